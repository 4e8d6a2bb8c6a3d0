/*
 * A wsgw echo worker in C, written against docs/protocol.md alone, with the official NATS C client
 * (Debian: libnats-dev). Every frame a client sends arrives on P.in.msg.<route>; this worker answers it
 * on the message's reply subject, which is the connection's P.out.<connId>, keeping the frame binary if
 * it was (header Wsgw-Binary: 1).
 *
 *   make -C services/c-worker && services/c-worker/wsgw-c-echo [nats-url] [prefix]
 *
 * Defaults: NATS_URL or nats://127.0.0.1:4222, WSGW_PREFIX or wsgw. Queue group: wsgw-workers.
 */
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;
static void on_signal(int sig) { (void)sig; stopping = 1; }

/* A safe token: 1-128 characters of A-Z a-z 0-9 _ - (what wsgw accepts in a subject). */
static int is_safe_token(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
  }
  return 1;
}

static void on_frame(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
  (void)sub;
  (void)closure;
  const char *reply = natsMsg_GetReply(msg);
  if (reply != NULL && reply[0] != '\0') {
    natsMsg *out = NULL;
    natsStatus s = natsMsg_Create(&out, reply, NULL, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    const char *binary = NULL;
    if (s == NATS_OK && natsMsgHeader_Get(msg, "Wsgw-Binary", &binary) == NATS_OK && binary != NULL && strcmp(binary, "1") == 0)
      s = natsMsgHeader_Set(out, "Wsgw-Binary", "1");
    if (s == NATS_OK) s = natsConnection_PublishMsg(nc, out);
    if (s != NATS_OK) fprintf(stderr, "wsgw-c-echo: reply on %s failed: %s\n", reply, natsStatus_GetText(s));
    natsMsg_Destroy(out);
  }
  natsMsg_Destroy(msg);
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : (getenv("NATS_URL") ? getenv("NATS_URL") : NATS_DEFAULT_URL);
  const char *prefix = argc > 2 ? argv[2] : (getenv("WSGW_PREFIX") ? getenv("WSGW_PREFIX") : "wsgw");
  if (!is_safe_token(prefix)) {
    fprintf(stderr, "wsgw-c-echo: prefix \"%s\" is not a safe token (A-Z a-z 0-9 _ -)\n", prefix);
    return 2;
  }
  char subject[160];
  snprintf(subject, sizeof subject, "%s.in.msg.>", prefix);

  natsOptions *opts = NULL;
  natsConnection *nc = NULL;
  natsSubscription *sub = NULL;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url);
  if (s == NATS_OK) s = natsOptions_SetName(opts, "wsgw-c-echo");
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1); /* keep trying: outlive NATS restarts */
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  if (s == NATS_OK) s = natsConnection_Connect(&nc, opts);
  if (s != NATS_OK) {
    fprintf(stderr, "wsgw-c-echo: cannot connect to NATS at %s: %s\n", url, natsStatus_GetText(s));
    return 1;
  }
  s = natsConnection_QueueSubscribe(&sub, nc, subject, "wsgw-workers", on_frame, NULL);
  if (s == NATS_OK) s = natsConnection_Flush(nc);
  if (s != NATS_OK) {
    fprintf(stderr, "wsgw-c-echo: subscribe %s: %s\n", subject, natsStatus_GetText(s));
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  /* one line on stdout once the subscription is live (tests and supervisors wait for it) */
  printf("{\"msg\":\"worker subscribed\",\"subject\":\"%s\"}\n", subject);
  fflush(stdout);

  while (!stopping) usleep(50 * 1000);

  /* finish the frames in flight, then leave */
  natsConnection_DrainTimeout(nc, 5000);
  while (!natsConnection_IsClosed(nc)) usleep(20 * 1000);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(opts);
  nats_Close();
  return 0;
}
