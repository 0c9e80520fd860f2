// Command mixedpaths measures the rate of HTTP GETs, a new connection
// each, 8 at once for 3 s, alternating between the given addresses, ROUNDS
// times (see mixed-paths.sh).
//
//	mixedpaths ROUNDS ADDR...
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func rate(addr string) (float64, int64) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var n, failed atomic.Int64
	deadline := time.Now().Add(3 * time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := client.Get("http://" + addr + "/i.txt")
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), failed.Load()
}

func main() {
	rounds, _ := strconv.Atoi(os.Args[1])
	for r := 1; r <= rounds; r++ {
		for _, a := range os.Args[2:] {
			v, f := rate(a)
			fmt.Printf("round %d %-22s %6.0f conn/s (%d failed)\n", r, a, v, f)
		}
	}
}
