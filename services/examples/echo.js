// Echo: every frame goes back to its sender, text as text, binary as binary.
// Runs unchanged in all three modes:
//   npx wsgw local --handler services/examples/echo.js
//   npx wsgw gateway --handler services/examples/echo.js
//   npx wsgw gateway  +  npx wsgw worker --handler services/examples/echo.js
export default {
  message(conn, message) {
    conn.send(message.data, { binary: message.binary });
  },
};
