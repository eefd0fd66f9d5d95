package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// ping asks the PLAINTEXT listener for its API versions and metadata: the
// broker is ready when both answer and it lists itself as a broker.
func ping(ctx context.Context, addr string) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Net.ReadTimeout = 5 * time.Second
	b := sarama.NewBroker(addr)
	if err := b.Open(cfg); err != nil {
		return err
	}
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		if _, err := b.ApiVersions(&sarama.ApiVersionsRequest{Version: 3, ClientSoftwareName: "kafkatest", ClientSoftwareVersion: "1"}); err != nil {
			done <- fmt.Errorf("api versions: %w", err)
			return
		}
		md, err := b.GetMetadata(&sarama.MetadataRequest{Version: 7})
		if err != nil {
			done <- fmt.Errorf("metadata: %w", err)
			return
		}
		if len(md.Brokers) == 0 {
			done <- errors.New("metadata lists no broker yet")
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
