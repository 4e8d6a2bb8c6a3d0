// Chat rooms over topics. Connect to ws://localhost:8000/ws?room=lobby&name=ann
// Every text frame you send is broadcast to everyone in the room as JSON:
//   {"type":"message","room":"lobby","name":"ann","text":"hi","from":"<connId>"}
// plus {"type":"welcome",...} to you on connect and {"type":"join"|"leave",...} to the room. With
// topic history on (--history), who joins also gets the room's last lines:
//   {"type":"history","room":"lobby","messages":[{"name","text","from","time"}, ...]}
// Runs unchanged under `wsgw local`, `wsgw gateway --handler` and `wsgw worker`: it keeps no state in
// memory; the room and name come from the upgrade request (conn.request), and rooms are topics.

const MAX_TEXT = 2000;
const SAFE = /^[A-Za-z0-9_-]{1,64}$/;
const HISTORY_LINES = 50;

function who(conn) {
  const q = new URLSearchParams(conn.request?.query ?? '');
  const room = q.get('room') || 'lobby';
  const name = (q.get('name') || `guest-${conn.id.slice(-4)}`).slice(0, 32);
  return { room, name, topic: `room-${room}` };
}

/** The room's last chat lines, oldest first: none when topic history is off. */
async function lastLines(topic, ctx) {
  let entries;
  try {
    entries = await ctx.history(topic, { limit: HISTORY_LINES * 2 });
  } catch (err) {
    if (err.code !== 'WSGW_HISTORY_OFF') ctx.log.warn({ err: err.message, topic }, 'could not read the room history');
    return [];
  }
  const lines = [];
  for (const e of entries) {
    // anything else broadcast to the room (by the HTTP API, say) is not a chat line
    let m = null;
    try {
      m = e.binary ? null : JSON.parse(e.text());
    } catch {}
    if (m?.type === 'message') lines.push({ name: m.name, text: m.text, from: m.from, time: e.time });
  }
  return lines.slice(-HISTORY_LINES);
}

export default {
  async open(conn, ctx) {
    const { room, name, topic } = who(conn);
    if (!SAFE.test(room)) {
      conn.close(4400, 'room must be 1-64 characters of A-Z a-z 0-9 _ -');
      return;
    }
    await conn.subscribe(topic);
    conn.send(JSON.stringify({ type: 'welcome', id: conn.id, room, name }));
    const earlier = await lastLines(topic, ctx);
    if (earlier.length > 0) conn.send(JSON.stringify({ type: 'history', room, messages: earlier }));
    ctx.publish(topic, JSON.stringify({ type: 'join', room, name, from: conn.id }));
  },

  message(conn, message, ctx) {
    if (message.binary) return;
    const { room, name, topic } = who(conn);
    if (!SAFE.test(room)) return;
    const text = message.text().slice(0, MAX_TEXT);
    ctx.publish(topic, JSON.stringify({ type: 'message', room, name, text, from: conn.id }));
  },

  close(conn, _info, ctx) {
    if (!conn.request) return;
    const { room, name, topic } = who(conn);
    if (SAFE.test(room)) ctx.publish(topic, JSON.stringify({ type: 'leave', room, name, from: conn.id }));
  },
};
