// Command kafkactl manages the real Kafka broker used by Partita's tests:
//
//	kafkactl up      fetch (once), format and start the broker; print its listeners
//	kafkactl down    stop it
//	kafkactl status  print the running broker's listeners, or exit 1
//	kafkactl fetch   only fetch the jars into the cache
//	kafkactl addr    print the running broker's PLAINTEXT address
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/partita-dev/partita/internal/kafkatest"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) != 2 {
		log.Fatal("usage: kafkactl up|down|status|fetch|addr")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	paths, err := kafkatest.DefaultPaths()
	if err != nil {
		log.Fatal(err)
	}
	var env *kafkatest.Env
	switch os.Args[1] {
	case "up":
		env, err = kafkatest.Up(ctx, paths, log.Printf)
	case "status":
		env, err = kafkatest.Running(ctx, paths)
	case "addr":
		e, err := kafkatest.Running(ctx, paths)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Plaintext)
		return
	case "fetch":
		err = kafkatest.Fetch(ctx, paths, log.Printf)
	case "down":
		err = kafkatest.Down(paths)
	default:
		log.Fatalf("unknown command %q: usage: kafkactl up|down|status|fetch|addr", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
	if env != nil {
		fmt.Printf("PLAINTEXT      %s\nSASL_PLAINTEXT %s\nSASL_SSL       %s\nSSL (mTLS)     %s\nlog            %s\n",
			env.Plaintext, env.SASLPlaintext, env.SASLSSL, env.SSL, env.LogFile)

	}
}
