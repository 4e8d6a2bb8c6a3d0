// A wsgw worker in Go, written against docs/protocol.md alone, with the official nats.go client.
//
//	wsgw-go-worker -mode echo   answers every frame on its reply subject (P.out.<connId>)
//	wsgw-go-worker -mode chat   the chat of services/examples/chat.js: rooms are topics, and who
//	                            joins gets the room's last lines when topic history is on
//
// Configuration: -nats (or NATS_URL), -prefix (or WSGW_PREFIX), -queue (default wsgw-workers).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// A safe token: what wsgw accepts in a subject (routes, topics, ids).
var safe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

const maxText = 2000

type openEvent struct {
	ID      string `json:"id"`
	Gateway string `json:"gateway"`
	Path    string `json:"path"`
	Query   string `json:"query"`
}

type closeEvent struct {
	ID   string            `json:"id"`
	Code int               `json:"code"`
	Lost bool              `json:"lost"`
	Meta map[string]string `json:"meta"`
}

// A connection record (docs/protocol.md, "Connection directory"): the open event's fields, and its metadata.
type connectionRecord struct {
	Query string            `json:"query"`
	Meta  map[string]string `json:"meta"`
}

type controlReply struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

type member struct{ room, name string }

// The chat keeps no table of its own: a connection's room and name are its metadata (set over P.ctl
// at open), carried on every later frame (Wsgw-Meta) and close event.
type worker struct {
	nc     *nats.Conn
	prefix string
	kv     nats.KeyValue         // the connection directory, for frames published before the open's metadata was set
	js     nats.JetStreamContext // the topic history, when some process runs with --history
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	natsURL := flag.String("nats", env("NATS_URL", nats.DefaultURL), "NATS server URL(s), comma-separated")
	prefix := flag.String("prefix", env("WSGW_PREFIX", "wsgw"), "subject prefix P (as the gateways' --prefix)")
	mode := flag.String("mode", env("WSGW_MODE", "echo"), "echo or chat")
	queue := flag.String("queue", env("WSGW_QUEUE", "wsgw-workers"), "queue group shared by the workers")
	durable := flag.Bool("durable", env("WSGW_DURABLE", "") == "1", "echo mode only: consume the --durable gateways' stream P_inbound through the durable consumer named after -queue, acking each frame once answered")
	flag.Parse()
	if !safe.MatchString(*prefix) {
		log.Fatalf("prefix %q is not a safe token (A-Z a-z 0-9 _ -)", *prefix)
	}
	if *mode != "echo" && *mode != "chat" {
		log.Fatalf("mode must be echo or chat, not %q", *mode)
	}
	if *durable && *mode != "echo" {
		log.Fatalf("-durable works with -mode echo only")
	}
	if !safe.MatchString(*queue) {
		log.Fatalf("queue %q is not a safe token (A-Z a-z 0-9 _ -)", *queue)
	}

	nc, err := nats.Connect(*natsURL,
		nats.Name("wsgw-go-worker"),
		nats.MaxReconnects(-1), // keep trying: a worker outlives NATS restarts
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Printf("disconnected from NATS: %v", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Printf("reconnected to %s", c.ConnectedUrl()) }),
	)
	if err != nil {
		log.Fatalf("cannot connect to NATS at %s: %v", *natsURL, err)
	}
	w := &worker{nc: nc, prefix: *prefix}

	subscribe := func(subject string, handler nats.MsgHandler) {
		if _, err := nc.QueueSubscribe(subject, *queue, handler); err != nil {
			log.Fatalf("subscribe %s: %v", subject, err)
		}
	}
	if *mode == "echo" && *durable {
		w.consumeDurable(*prefix+"_inbound", *queue)
	} else if *mode == "echo" {
		subscribe(*prefix+".in.msg.>", w.echo)
	} else {
		js, err := nc.JetStream()
		if err == nil {
			w.js = js
			w.kv, err = js.KeyValue(*prefix + "_connections")
		}
		if err != nil {
			log.Printf("connection directory not available (%v): frames are matched to rooms from open events only", err)
		}
		subscribe(*prefix+".in.open", w.chatOpen)
		subscribe(*prefix+".in.msg.>", w.chatMessage)
		subscribe(*prefix+".in.close", w.chatClose)
	}
	if err := nc.Flush(); err != nil {
		log.Fatalf("flush: %v", err)
	}
	// one line on stdout once the subscriptions are live (tests and supervisors wait for it)
	fmt.Printf("{\"msg\":\"worker subscribed\",\"mode\":%q,\"prefix\":%q}\n", *mode, *prefix)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	// finish what is in flight, then leave
	if err := nc.Drain(); err != nil {
		log.Printf("drain: %v", err)
	}
	for !nc.IsClosed() {
		time.Sleep(20 * time.Millisecond)
	}
}

// echo answers a frame on its reply subject (P.out.<connId>), keeping it binary if it was.
func (w *worker) echo(m *nats.Msg) {
	_ = w.echoTo(m.Reply, m)
}

// echoTo sends frame m back as it came (binary kept binary) to subject, the connection's P.out.
func (w *worker) echoTo(subject string, m *nats.Msg) error {
	out := nats.NewMsg(subject)
	out.Data = m.Data
	if m.Header.Get("Wsgw-Binary") == "1" {
		out.Header.Set("Wsgw-Binary", "1")
	}
	err := w.nc.PublishMsg(out)
	if err != nil {
		log.Printf("reply to %s: %v", m.Header.Get("Wsgw-Conn"), err)
	}
	return err
}

// consumeDurable pulls from the durable consumer `name` on the inbound stream (created here when
// missing, once a gateway started with --durable has created the stream), as `wsgw worker --durable`
// does: explicit acks, a frame not acked within 30 s is delivered again, 5 deliveries at most.
// Durable messages carry no reply subject: the answer goes to P.out.<Wsgw-Conn>.
func (w *worker) consumeDurable(stream, name string) {
	js, err := w.nc.JetStream()
	if err != nil {
		log.Fatalf("jetstream: %v", err)
	}
	for attempt := 0; ; attempt++ {
		_, err = js.ConsumerInfo(stream, name)
		if errors.Is(err, nats.ErrConsumerNotFound) {
			_, err = js.AddConsumer(stream, &nats.ConsumerConfig{Durable: name, AckPolicy: nats.AckExplicitPolicy, AckWait: 30 * time.Second, DeliverPolicy: nats.DeliverAllPolicy, MaxDeliver: 5, MaxAckPending: 10000})
		}
		if err == nil {
			break
		}
		if !errors.Is(err, nats.ErrStreamNotFound) {
			log.Fatalf("durable consumer %s on %s: %v", name, stream, err)
		}
		if attempt%30 == 0 {
			log.Printf("waiting for the stream %s (a gateway started with --durable creates it)", stream)
		}
		time.Sleep(time.Second)
	}
	sub, err := js.PullSubscribe("", name, nats.Bind(stream, name))
	if err != nil {
		log.Fatalf("pull subscribe %s on %s: %v", name, stream, err)
	}
	go func() {
		for {
			msgs, err := sub.Fetch(256, nats.MaxWait(time.Second))
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
				return
			}
			for _, m := range msgs {
				w.durableEcho(m)
			}
		}
	}()
}

// durableEcho answers a frame from the stream on P.out.<Wsgw-Conn>, then acks it; opens and closes
// are acked as they are.
func (w *worker) durableEcho(m *nats.Msg) {
	conn := m.Header.Get("Wsgw-Conn")
	if strings.HasPrefix(m.Subject, w.prefix+".in.msg.") && conn != "" {
		if err := w.echoTo(w.prefix+".out."+conn, m); err != nil {
			_ = m.Nak()
			return
		}
	}
	if err := m.Ack(); err != nil {
		log.Printf("ack: %v", err)
	}
}

func (w *worker) send(connID string, v any) {
	b, _ := json.Marshal(v)
	if err := w.nc.Publish(w.prefix+".out."+connID, b); err != nil {
		log.Printf("send to %s: %v", connID, err)
	}
}

func (w *worker) broadcast(topic string, v any) {
	b, _ := json.Marshal(v)
	if err := w.nc.Publish(w.prefix+".topic."+topic, b); err != nil {
		log.Printf("publish to %s: %v", topic, err)
	}
}

// control sends a command to the connection's gateway and waits for its answer.
func (w *worker) control(connID string, cmd map[string]any) error {
	b, _ := json.Marshal(cmd)
	reply, err := w.nc.Request(w.prefix+".ctl."+connID, b, 5*time.Second)
	if err != nil {
		return err
	}
	var r controlReply
	if err := json.Unmarshal(reply.Data, &r); err != nil {
		return err
	}
	if !r.OK {
		return fmt.Errorf("%s %s", r.Error, r.Message)
	}
	return nil
}

func who(connID, query string) member {
	q, _ := url.ParseQuery(query)
	room := q.Get("room")
	if room == "" {
		room = "lobby"
	}
	name := q.Get("name")
	if name == "" {
		name = "guest-" + connID[len(connID)-4:]
	}
	if utf8.RuneCountInString(name) > 32 {
		name = string([]rune(name)[:32])
	}
	return member{room, name}
}

func (w *worker) chatOpen(m *nats.Msg) {
	var ev openEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil || !strings.Contains(ev.ID, ".") {
		log.Printf("invalid open event: %v", err)
		return
	}
	me := who(ev.ID, ev.Query)
	if !safe.MatchString(me.room) {
		_ = w.control(ev.ID, map[string]any{"op": "close", "code": 4400, "reason": "room must be 1-64 characters of A-Z a-z 0-9 _ -"})
		return
	}
	// remembered with the connection: every later event of it carries these
	if err := w.control(ev.ID, map[string]any{"op": "meta", "set": map[string]string{"room": me.room, "name": me.name}}); err != nil {
		log.Printf("metadata of %s: %v", ev.ID, err)
		return
	}
	topic := "room-" + me.room
	// the answer comes once the gateway's topic subscription is registered: the join below reaches us too
	if err := w.control(ev.ID, map[string]any{"op": "subscribe", "topic": topic}); err != nil {
		log.Printf("subscribe %s to %s: %v", ev.ID, topic, err)
		return
	}
	w.send(ev.ID, map[string]any{"type": "welcome", "id": ev.ID, "room": me.room, "name": me.name})
	if earlier := w.lastLines(topic); len(earlier) > 0 {
		w.send(ev.ID, map[string]any{"type": "history", "room": me.room, "messages": earlier})
	}
	w.broadcast(topic, map[string]any{"type": "join", "room": me.room, "name": me.name, "from": ev.ID})
}

const historyLines = 50

// lastLines reads the room's last chat lines from the topic history (docs/protocol.md, "Topic
// history"): an ephemeral consumer on P_history filtered to the topic, fetched up to the count its
// creation gave, then deleted. None when no process was started with --history (no stream).
func (w *worker) lastLines(topic string) []map[string]any {
	if w.js == nil {
		return nil
	}
	stream, subject := w.prefix+"_history", w.prefix+".topic."+topic
	ci, err := w.js.AddConsumer(stream, &nats.ConsumerConfig{
		FilterSubject:     subject,
		AckPolicy:         nats.AckNonePolicy,
		DeliverPolicy:     nats.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
		MemoryStorage:     true,
	})
	if err != nil {
		if !errors.Is(err, nats.ErrStreamNotFound) {
			log.Printf("history of %s: %v", topic, err)
		}
		return nil
	}
	defer func() { _ = w.js.DeleteConsumer(stream, ci.Name) }()
	if ci.NumPending == 0 {
		return nil
	}
	sub, err := w.js.PullSubscribe(subject, "", nats.Bind(stream, ci.Name))
	if err != nil {
		log.Printf("history of %s: %v", topic, err)
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	lines := []map[string]any{}
	for fetched := uint64(0); fetched < ci.NumPending; {
		msgs, err := sub.Fetch(int(ci.NumPending-fetched), nats.MaxWait(5*time.Second))
		if err != nil {
			log.Printf("history of %s: %v", topic, err)
			break
		}
		for _, m := range msgs {
			fetched++
			var line struct{ Type, Name, Text, From string }
			// anything else broadcast to the room is not a chat line
			if m.Header.Get("Wsgw-Binary") == "1" || json.Unmarshal(m.Data, &line) != nil || line.Type != "message" {
				continue
			}
			at := int64(0)
			if md, err := m.Metadata(); err == nil {
				at = md.Timestamp.UnixMilli()
			}
			lines = append(lines, map[string]any{"name": line.Name, "text": line.Text, "from": line.From, "time": at})
		}
	}
	if len(lines) > historyLines {
		lines = lines[len(lines)-historyLines:]
	}
	return lines
}

// fromMeta reads the room and name the open set as the connection's metadata.
func fromMeta(meta map[string]string) (member, bool) {
	room, ok := meta["room"]
	return member{room, meta["name"]}, ok
}

// lookup finds a connection's room and name: from the metadata its event carries, else (a frame the
// gateway published before it applied the open's metadata) from its record in the connection directory.
func (w *worker) lookup(connID string, meta map[string]string) (member, bool) {
	if me, ok := fromMeta(meta); ok || w.kv == nil {
		return me, ok
	}
	entry, err := w.kv.Get(connID)
	if err != nil {
		return member{}, false
	}
	var rec connectionRecord
	if json.Unmarshal(entry.Value(), &rec) != nil {
		return member{}, false
	}
	if me, ok := fromMeta(rec.Meta); ok {
		return me, true
	}
	return who(connID, rec.Query), true
}

func (w *worker) chatMessage(m *nats.Msg) {
	if m.Header.Get("Wsgw-Binary") == "1" {
		return
	}
	connID := m.Header.Get("Wsgw-Conn")
	var meta map[string]string
	if h := m.Header.Get("Wsgw-Meta"); h != "" {
		_ = json.Unmarshal([]byte(h), &meta)
	}
	me, ok := w.lookup(connID, meta)
	if !ok || !safe.MatchString(me.room) {
		return
	}
	text := string(m.Data)
	if utf8.RuneCountInString(text) > maxText {
		text = string([]rune(text)[:maxText])
	}
	if text == "/quit" {
		if err := w.control(connID, map[string]any{"op": "close", "code": 4000, "reason": "bye"}); err != nil {
			log.Printf("close %s: %v", connID, err)
		}
		return
	}
	w.broadcast("room-"+me.room, map[string]any{"type": "message", "room": me.room, "name": me.name, "text": text, "from": connID})
}

func (w *worker) chatClose(m *nats.Msg) {
	var ev closeEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return
	}
	// a connection refused at open has no metadata: nothing to announce
	me, ok := fromMeta(ev.Meta)
	if ok && safe.MatchString(me.room) {
		w.broadcast("room-"+me.room, map[string]any{"type": "leave", "room": me.room, "name": me.name, "from": ev.ID})
	}
}
