import type { Conn, Handler, Message } from './types.js';

/** The built-in handler: every frame goes back to its sender, text as text, binary as binary. */
export const echoHandler: Handler = Object.freeze({
  message(conn: Conn, message: Message) {
    conn.send(message.data, { binary: message.binary });
  },
});
