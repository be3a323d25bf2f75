package log

// murmur2 is the 32-bit MurmurHash2 with Kafka's seed, bit for bit as
// org.apache.kafka.common.utils.Utils.murmur2, so a key lands on the same
// partition here as with a Kafka client's default partitioner.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch n - i {
	case 3:
		h ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// PartitionForKey is Kafka's default partitioner for a keyed record:
// toPositive(murmur2(key)) % partitions.
func PartitionForKey(key []byte, partitions int) int {
	return int(uint32(murmur2(key))&0x7fffffff) % partitions
}
