package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/topics"
)

// call makes an HTTP request and returns the status, the body and the
// Partita-Position header.
func call(t *testing.T, method, addr, path string, body any) (int, []byte, string) {
	t.Helper()
	var in io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		in = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, in)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header.Get("Partita-Position")
}

type entityState struct {
	Subject string          `json:"subject"`
	Exists  bool            `json:"exists"`
	Seq     uint64          `json:"seq"`
	State   json.RawMessage `json:"state"`
}

type errorBody struct {
	Error struct{ Code, Message string } `json:"error"`
}

// kafkaMarks is what the broker holds of an application: the end offset of
// every partition of every topic with its prefix, and the committed
// offsets of its groups.
func kafkaMarks(t *testing.T, cl sarama.Client, admin sarama.ClusterAdmin, app string, groups []string) map[string]int64 {
	t.Helper()
	if err := cl.RefreshMetadata(); err != nil {
		t.Fatal(err)
	}
	topics, err := cl.Topics()
	if err != nil {
		t.Fatal(err)
	}
	marks := map[string]int64{}
	for _, topic := range topics {
		if !strings.HasPrefix(topic, app+".") {
			continue
		}
		parts, err := cl.Partitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			hwm, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			marks[fmt.Sprintf("end %s/%d", topic, p)] = hwm
		}
	}
	for _, g := range groups {
		offs, err := admin.ListConsumerGroupOffsets(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		for topic, blocks := range offs.Blocks {
			for p, b := range blocks {
				marks[fmt.Sprintf("group %s %s/%d", g, topic, p)] = b.Offset
			}
		}
	}
	return marks
}

// GET /entities/{entity}/{id} reads a subject's state, with read-your-writes
// through the command reply's position, and writes nothing: every end
// offset of every topic of the application and every committed offset of
// its groups are the same before and after 50 reads.
func TestEntityStateReadWritesNothing(t *testing.T) {
	e := kafkatest.Require(t)
	app := fmt.Sprintf("st%d", time.Now().UnixNano())
	w := startWorker(t, app, e.Plaintext)

	code, body, tok1 := call(t, "POST", w.addr, "/entities/customer/c1/create", shop.CreateCustomer{Email: "c1@example.com", Name: "One"})
	if code != http.StatusOK || tok1 == "" {
		t.Fatalf("create: %d %s, position %q", code, body, tok1)
	}
	// Right after the reply, with its position: that write.
	code, body, pos := call(t, "GET", w.addr, "/entities/customer/c1?after="+url.QueryEscape(tok1), nil)
	if code != http.StatusOK {
		t.Fatalf("GET after create: %d %s", code, body)
	}
	var st entityState
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var c shop.Customer
	_ = json.Unmarshal(st.State, &c)
	if st.Subject != "c1" || !st.Exists || st.Seq != 1 || c.Name != "One" || c.Email != "c1@example.com" {
		t.Errorf("GET after create: %s", body)
	}
	if p, err := topics.ParsePosition(pos); err != nil || p != (topics.Position{Entity: "customer", Subject: "c1", Seq: 1}) {
		t.Errorf("the read's position %q: %+v %v", pos, p, err)
	}
	// Each write, read at once with its token: never the older state.
	var tok string
	for i := range 5 {
		name := fmt.Sprintf("Name %d", i)
		code, body, tok = call(t, "POST", w.addr, "/entities/customer/c1/change-name", shop.ChangeName{Name: name})
		if code != http.StatusOK || tok == "" {
			t.Fatalf("change-name: %d %s", code, body)
		}
		code, body, _ = call(t, "GET", w.addr, "/entities/customer/c1?after="+url.QueryEscape(tok), nil)
		st = entityState{}
		_ = json.Unmarshal(body, &st)
		c = shop.Customer{}
		_ = json.Unmarshal(st.State, &c)
		if code != http.StatusOK || c.Name != name || st.Seq != uint64(i+2) {
			t.Errorf("GET after change-name %d: %d %s", i, code, body)
		}
	}
	code, body, cartTok := call(t, "POST", w.addr, "/entities/cart/k1/add-item", shop.AddItem{ProductID: "pen", Name: "Pen", Quantity: 3})
	if code != http.StatusOK || cartTok == "" {
		t.Fatalf("add-item: %d %s", code, body)
	}

	// Quiet: the views have applied the writes and nothing moves any more.
	for _, q := range []string{"/views/customers-by-email/c1?after=" + url.QueryEscape(tok), "/views/carts/k1?after=" + url.QueryEscape(cartTok)} {
		if code, body := get(w.addr, q); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", q, code, body)
		}
	}
	sc := sarama.NewConfig()
	cl, err := sarama.NewClient([]string{e.Plaintext}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	groups := []string{app + ".customer", app + ".cart", app + ".customers-by-email", app + ".carts"}
	before := kafkaMarks(t, cl, admin, app, groups)
	for deadline := time.Now().Add(30 * time.Second); ; {
		time.Sleep(time.Second)
		again := kafkaMarks(t, cl, admin, app, groups)
		if maps.Equal(before, again) {
			break
		}
		before = again
		if time.Now().After(deadline) {
			t.Fatal("the application's offsets do not settle")
		}
	}
	if n := len(before); n < 10*8 {
		t.Fatalf("only %d offsets found: %v", n, slices.Sorted(maps.Keys(before)))
	}

	// 50 reads: plain, with positions, missing subjects, errors.
	type read struct {
		path string
		want int
		code string // the error code, for errors
	}
	var reads []read
	for i := range 50 {
		switch i % 10 {
		case 0, 1, 2:
			reads = append(reads, read{"/entities/customer/c1", 200, ""})
		case 3, 4:
			reads = append(reads, read{"/entities/customer/c1?after=" + url.QueryEscape(tok), 200, ""})
		case 5:
			reads = append(reads, read{"/entities/cart/k1?after=" + url.QueryEscape(cartTok), 200, ""})
		case 6, 7:
			reads = append(reads, read{fmt.Sprintf("/entities/customer/missing-%d", i), 404, "not_found"})
		case 8:
			reads = append(reads, read{"/entities/customer/c2?after=" + url.QueryEscape(tok), 400, "invalid_argument"}) // another subject's token
		case 9:
			reads = append(reads, read{"/entities/nope/c1", 404, "not_found"})
		}
	}
	reads = append(reads[:48], read{"/entities/customer/c1?after=garbage", 400, "invalid_argument"},
		read{"/entities/cart/missing", 404, "not_found"})
	for _, r := range reads {
		code, body, _ := call(t, "GET", w.addr, r.path, nil)
		if code != r.want {
			t.Errorf("GET %s: %d %s, want %d", r.path, code, body, r.want)
			continue
		}
		if r.code != "" {
			var eb errorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != r.code {
				t.Errorf("GET %s: %s, want error code %s", r.path, body, r.code)
			}
		} else if st := (entityState{}); json.Unmarshal(body, &st) != nil || !st.Exists {
			t.Errorf("GET %s: %s", r.path, body)
		}
	}
	time.Sleep(2 * time.Second) // anything a read wrote would be visible by now
	after := kafkaMarks(t, cl, admin, app, groups)
	if !maps.Equal(before, after) {
		for _, k := range slices.Sorted(maps.Keys(after)) {
			if before[k] != after[k] {
				t.Errorf("%s moved from %d to %d during the reads", k, before[k], after[k])
			}
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				t.Errorf("%s is gone", k)
			}
		}
	} else {
		t.Logf("%d reads; %d end and committed offsets unchanged", len(reads), len(after))
	}

	// A position the replica never reaches: 504 within the read timeout.
	far := topics.Position{Entity: "customer", Subject: "c1", Seq: 1 << 40}.Token()
	start := time.Now()
	if code, body, _ := call(t, "GET", w.addr, "/entities/customer/c1?after="+far, nil); code != http.StatusGatewayTimeout || !strings.Contains(string(body), `"stale"`) {
		t.Errorf("unreachable position: %d %s", code, body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the unreachable position took %v", d)
	}
}
