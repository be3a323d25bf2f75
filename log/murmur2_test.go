package log

import "testing"

// Vectors from Kafka's own test of Utils.murmur2 (UtilsTest) and librdkafka.
func TestMurmur2KafkaVectors(t *testing.T) {
	cases := []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"1", -1993445489},
		{"12", 126087238},
		{"123", -267702483},
		{"1234", -1614185708},
		{"12345", -1188365604},
	}
	for _, c := range cases {
		if got := murmur2([]byte(c.in)); got != c.want {
			t.Errorf("murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestPartitionForKeyIsInRangeAndPositive(t *testing.T) {
	// -973932308 & 0x7fffffff = 1173551340; % 3 = 0; % 10 = 0.
	if got := PartitionForKey([]byte("21"), 3); got != 1173551340%3 {
		t.Fatalf("partition of %q over 3 = %d", "21", got)
	}
	for i := 0; i < 1000; i++ {
		p := PartitionForKey([]byte{byte(i), byte(i >> 8)}, 7)
		if p < 0 || p >= 7 {
			t.Fatalf("partition %d out of range", p)
		}
	}
}
