package access

import "testing"

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8081": true, "localhost:8081": true, "[::1]:8081": true, "127.1.2.3:1": true,
		":8081": false, "0.0.0.0:8081": false, "[::]:8081": false, "10.0.0.7:8081": false, "db.example:8081": false, "8081": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
