package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor/broker"
	"github.com/partita-dev/partita/request"
)

// GatewaySource is the ce-source of a request that names none
// (request.DefaultSource): the worker's gateway sends every command with
// it, on every worker, so a request retried with one Idempotency-Key
// against any worker is recognised as the same command.
const GatewaySource = request.DefaultSource

// recentDeadLetters is how many dead letters Client.DeadLetters keeps.
const recentDeadLetters = 50

// DeadLetter is a record seen on the application's dead-letter topic, as
// the worker's dashboard lists it.
type DeadLetter struct {
	Time   time.Time `json:"time"`
	Group  string    `json:"group"`  // the entity or view that gave up on it
	Reason string    `json:"reason"` // partita_dlq_reason
	Key    string    `json:"key"`
	ID     string    `json:"id,omitempty"`   // the record's ce-id, when it has one
	Type   string    `json:"type,omitempty"` // its ce-type
	Code   string    `json:"code,omitempty"` // the reason's kind (package deadletter's code), when it has one
}

// Client sends commands to the runtime's entities over Kafka and waits for
// their replies or dead letters: a request.Requester. It is the only
// part of Partita besides the runtime that talks to Kafka; the worker's
// HTTP gateway sends through it.
//
// Contract:
//   - A command goes to the entity's commands topic, keyed by its subject
//     and partitioned with murmur2 (the runtime's partitioner), written
//     with acks from all in-sync replicas. It asks for a reply.
//   - The client follows the replies and dead-letter topics from their
//     ends as of its start; Ready is closed once it follows every
//     partition. A reply or dead letter is handed to the request waiting
//     for its command's ce-source and ce-id on this client; one nobody
//     waits for (another client's, a redelivery's second reply) is
//     dropped. If following stops (a broker restart), it starts again from
//     the ends, after a second.
//   - Request errors: see package request (ErrUnknownEntity, ErrInvalid,
//     ErrRecordTooLarge, ErrNotFollowing, ErrInFlight, ErrUnavailable,
//     ErrNoReply, *DeadLetterError).
//
// Safe for concurrent use.
type Client struct {
	rt     *Runtime
	topics topics.Names
	log    *slog.Logger
	client sarama.Client // the follower's
	prodCl sarama.Client // the producer's: its own connections (see NewClient)
	prod   sarama.SyncProducer
	max    int // the producer's record limit

	stop     context.CancelFunc
	stopped  chan struct{} // closed when the follower has returned
	ready    chan struct{}
	readied  sync.Once
	closeErr error
	closed   sync.Once

	mu      sync.Mutex
	pending map[string]chan answer // command source NUL id -> waiting request
	recent  []DeadLetter           // the last dead letters seen, newest last
}

var _ request.Requester = (*Client)(nil)

type answer struct {
	reply codec.Event
	dead  *DeadLetter
}

// NewClient connects a Client to the runtime's cluster and starts
// following the replies and dead-letter topics. A connection failure is
// broker.Connect's (errors.Is(err, broker.ErrNoBroker) while no broker is
// reachable). The topics need not exist yet: the client waits for them
// (the runtime creates them when it runs), and is ready once it follows
// them. The client follows until ctx ends or Close; Close releases it.
func (r *Runtime) NewClient(ctx context.Context) (*Client, error) {
	// The producer and the follower have a client each. Kafka answers one
	// request at a time per connection, so on a shared connection a
	// command's produce request waited behind the follower's fetch, which
	// the broker holds up to Consumer.MaxWaitTime (500 ms) when no reply is
	// ready: the gateway's p99 was half a second at any rate.
	client, err := broker.Connect(ctx, r.cfg.Kafka, r.cfg.Log)
	if err != nil {
		return nil, err
	}
	prodCl, err := broker.Connect(ctx, r.cfg.Kafka, r.cfg.Log)
	if err != nil {
		client.Close()
		return nil, err
	}
	prodCl.Config().Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	prodCl.Config().Producer.RequiredAcks = sarama.WaitForAll
	prod, err := sarama.NewSyncProducerFromClient(prodCl)
	if err != nil {
		client.Close()
		prodCl.Close()
		return nil, err
	}
	fctx, stop := context.WithCancel(ctx)
	c := &Client{rt: r, topics: r.topics, log: r.cfg.Log, client: client, prodCl: prodCl, prod: prod,
		max: prodCl.Config().Producer.MaxMessageBytes, stop: stop, stopped: make(chan struct{}),
		ready: make(chan struct{}), pending: map[string]chan answer{}}
	go c.listen(fctx)
	return c, nil
}

// Ready is closed once the client follows every partition of the replies
// and dead-letter topics: before, Request fails with ErrNotFollowing (a
// reply written before the follower's starting offsets would be missed).
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Close stops following and closes the client's connections. Requests
// waiting then end with their context.
func (c *Client) Close() error {
	c.closed.Do(func() {
		c.stop()
		select {
		case <-c.stopped:
		case <-time.After(5 * time.Second): // stuck in a metadata call: closing the client ends it
		}
		c.closeErr = errors.Join(c.prod.Close(), c.prodCl.Close(), c.client.Close())
	})
	return c.closeErr
}

// DeadLetters returns the last 50 dead letters the client has seen on the
// application's dead-letter topic since it started (whoever sent their
// records), oldest first.
func (c *Client) DeadLetters() []DeadLetter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]DeadLetter(nil), c.recent...)
}

// Request writes req's command and waits until its reply or dead letter
// arrives or ctx ends. The write itself is not cancelled by ctx: once
// Request has begun writing, the command is written (or fails with
// ErrUnavailable or ErrRecordTooLarge).
//
// Errors, for errors.Is and errors.As: request.ErrUnknownEntity (also
// ErrUnknownEntity) when entity takes no commands; request.ErrInvalid when
// the request makes no valid CloudEvent; request.ErrRecordTooLarge;
// request.ErrNotFollowing before Ready; request.ErrInFlight when a request
// with the same source and id waits on this client; request.ErrUnavailable
// wrapping the producer's error; *request.DeadLetterError (wrapping
// request.ErrDeadLetter and the dead letter's kind); request.ErrNoReply,
// wrapping ctx's error, when ctx ends first. Nothing is written in the
// first five cases.
func (c *Client) Request(ctx context.Context, req request.Request) (request.Reply, error) {
	if !c.takesCommands(req.Entity) {
		return request.Reply{}, fmt.Errorf("%w: %q (%w)", request.ErrUnknownEntity, req.Entity, ErrUnknownEntity)
	}
	id, source, data := req.ID, req.Source, req.Data
	if id == "" {
		id = newRequestID()
	}
	if source == "" {
		source = GatewaySource
	}
	if len(data) == 0 {
		data = []byte("{}")
	}
	ev := codec.NewEvent()
	ev.SetID(id)
	ev.SetSource(source)
	ev.SetType(req.Command)
	ev.SetSubject(req.Subject)
	ev.SetTime(time.Now())
	ev.SetExtension(codec.ExtReply, "true")
	if req.Caller != nil {
		b, err := json.Marshal(req.Caller)
		if err != nil {
			return request.Reply{}, fmt.Errorf("%w: caller: %w", request.ErrInvalid, err)
		}
		ev.SetExtension(codec.ExtCaller, string(b))
	}
	ev.SetDataContentType("application/json")
	ev.DataEncoded = data
	rec, err := codec.EncodeEvent(ev)
	if err == nil {
		err = codec.RequireSubject(ev)
	}
	if err != nil {
		return request.Reply{}, fmt.Errorf("%w: %w", request.ErrInvalid, err)
	}
	if n := core.RecordSize(rec.Key, rec.Value, rec.Headers); n > c.max {
		return request.Reply{}, fmt.Errorf("%w: it would be %d bytes, more than Kafka accepts (%d)", request.ErrRecordTooLarge, n, c.max)
	}
	select {
	case <-c.ready:
	default:
		return request.Reply{}, request.ErrNotFollowing
	}
	key := source + "\x00" + id
	ch := make(chan answer, 1)
	c.mu.Lock()
	if c.pending[key] != nil {
		c.mu.Unlock()
		return request.Reply{}, fmt.Errorf("%w on this client: %s", request.ErrInFlight, id)
	}
	c.pending[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, key)
		c.mu.Unlock()
	}()
	msg := &sarama.ProducerMessage{Topic: c.topics.Commands(req.Entity), Key: sarama.ByteEncoder(rec.Key), Value: sarama.ByteEncoder(rec.Value)}
	for k, v := range rec.Headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
	}
	if _, _, err := c.prod.SendMessage(msg); err != nil {
		if errors.Is(err, sarama.ErrMessageSizeTooLarge) {
			return request.Reply{}, fmt.Errorf("%w: Kafka refused it: %w", request.ErrRecordTooLarge, err)
		}
		return request.Reply{}, fmt.Errorf("%w to Kafka: %w", request.ErrUnavailable, err)
	}
	select {
	case a := <-ch:
		if a.dead != nil {
			return request.Reply{}, &request.DeadLetterError{Code: a.dead.Code, Reason: a.dead.Reason}
		}
		return replyOf(a.reply), nil
	case <-ctx.Done():
		return request.Reply{}, fmt.Errorf("%w to command %s (it may still be applied: retry with the same id): %w", request.ErrNoReply, id, ctx.Err())
	}
}

// takesCommands reports whether entity is one of the runtime's entities
// with a commands topic (not a stateless consumer).
func (c *Client) takesCommands(entity string) bool {
	for _, d := range c.rt.defs {
		if d.Name == entity {
			return d.Kind != core.Stateless
		}
	}
	return false
}

// replyOf reads a reply event.
func replyOf(ev codec.Event) request.Reply {
	r := request.Reply{Data: ev.Data()}
	if pos, ok := ev.Extensions()[codec.ExtPosition]; ok {
		r.Position = fmt.Sprint(pos)
	}
	if ev.Type() == core.TypeError {
		var body struct{ Code, Message string }
		_ = json.Unmarshal(ev.Data(), &body)
		r.Code, r.Message = body.Code, body.Message
		if r.Code == "" { // the runtime writes none such; an error must still read as one
			r.Code = fmt.Sprint(ev.Extensions()[codec.ExtErrorCode])
		}
	}
	return r
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// listen follows the replies and dead-letter topics from their ends (as of
// start-up) and hands each to the request waiting for it.
func (c *Client) listen(ctx context.Context) {
	defer close(c.stopped)
	for ctx.Err() == nil {
		err := c.follow(ctx)
		if ctx.Err() == nil {
			c.log.Warn("reply listener stopped; restarting", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *Client) follow(ctx context.Context) error {
	// Wait until the runtime created the topics.
	for {
		if err := c.client.RefreshMetadata(c.topics.Replies(), c.topics.DeadLetters()); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	consumer, err := sarama.NewConsumerFromClient(c.client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	msgs := make(chan *sarama.ConsumerMessage, 256)
	stopped := make(chan struct{}, 1) // a partition consumer ended: start over
	for _, topic := range []string{c.topics.Replies(), c.topics.DeadLetters()} {
		parts, err := c.client.Partitions(topic)
		if err != nil {
			return err
		}
		for _, p := range parts {
			newest, err := c.client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return err
			}
			pc, err := consumer.ConsumePartition(topic, p, newest)
			if err != nil {
				return err
			}
			defer pc.AsyncClose()
			go func() {
				for m := range pc.Messages() {
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				}
				select {
				case stopped <- struct{}{}:
				default:
				}
			}()
		}
	}
	c.readied.Do(func() { close(c.ready) })
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errors.New("a reply or dead-letter partition consumer stopped")
		case m := <-msgs:
			c.deliver(m)
		}
	}
}

// deliver hands a reply or dead letter to the request waiting for it, and
// keeps every dead letter among the recent ones.
func (c *Client) deliver(m *sarama.ConsumerMessage) {
	headers := map[string][]byte{}
	for _, h := range m.Headers {
		headers[string(h.Key)] = h.Value
	}
	var key string
	var a answer
	if m.Topic == c.topics.DeadLetters() {
		d := DeadLetter{Time: m.Timestamp, Group: string(headers[topics.HeaderDLQGroup]), Reason: string(headers[topics.HeaderDLQReason]),
			Key: string(m.Key), ID: string(headers["ce_id"]), Type: string(headers["ce_type"]),
			Code: string(headers[topics.HeaderDLQCode])}
		c.mu.Lock()
		c.recent = append(c.recent, d)
		if len(c.recent) > recentDeadLetters {
			c.recent = c.recent[1:]
		}
		c.mu.Unlock()
		key, a.dead = string(headers["ce_source"])+"\x00"+d.ID, &d
	} else {
		ev, err := codec.DecodeEvent(codec.Record{Key: m.Key, Value: m.Value, Headers: headers})
		if err != nil {
			return
		}
		// Correlated by the command's source and id: another producer's
		// command may reuse an id.
		ext := ev.Extensions()
		key, a.reply = fmt.Sprint(ext[codec.ExtRequestSource])+"\x00"+fmt.Sprint(ext[codec.ExtRequest]), ev
	}
	c.mu.Lock()
	ch := c.pending[key]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- a:
		default: // already answered (a redelivery's reply)
		}
	}
}

// PositionToken is the position token of entity's subject at sequence
// number seq: what a command's reply carries (request.Reply.Position) and
// what State and view queries accept as after.
func PositionToken(entity, subject string, seq uint64) string {
	return topics.Position{Entity: entity, Subject: subject, Seq: seq}.Token()
}
