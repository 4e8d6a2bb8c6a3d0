// Bench handler for broadcast fan-out: every connection joins topic "fan"; every frame received is
// broadcast to it. Runs under `wsgw worker --handler` (and unchanged in the other modes).
export default {
  async open(conn) {
    await conn.subscribe('fan');
  },
  message(_conn, message, ctx) {
    ctx.publish('fan', message.data, { binary: message.binary });
  },
};
