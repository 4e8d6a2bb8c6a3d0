import t from 'tap';
import { FrameHeaderEncoder, frameHeaders } from '../../src/gateway/frame-headers.js';
import { encodeHeaders } from '../../src/nats/raw-publish.js';

t.test('pre-encoded frame headers are byte for byte what nats.js encodes for the same headers', async (t) => {
  const enc = new FrameHeaderEncoder('gw-a1.Vb7Qn2LkR8sPq0aZ', 'gw-a1');
  for (const [seq, binary] of [
    [1, false],
    [42, true],
    [9_007_199_254_740_991, false],
  ] as const) {
    const fast = encodeHeaders(enc.at(seq, binary));
    const real = frameHeaders('gw-a1.Vb7Qn2LkR8sPq0aZ', 'gw-a1', seq, binary).encode();
    t.same(Buffer.from(fast).toString(), Buffer.from(real).toString(), `seq ${seq}, binary ${binary}`);
  }
});
