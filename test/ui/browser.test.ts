import t from 'tap';
import { statSync } from 'node:fs';
import type { Page } from 'playwright-core';
import chat from '../../services/examples/chat.js';
import type { Handler } from '../../src/handlers/types.js';
import { launchChromium, screenshotPath } from '../harness/browser.js';
import { startNatsServer } from '../harness/nats-server.js';
import { quietLog, startConnectionService, startGateway, startWorker, uniquePrefix } from '../harness/stack.js';
import { connect } from '@nats-io/transport-node';
import { ensureHistoryStream } from '../../src/nats/history.js';
import { createSubjects } from '../../src/protocol/subjects.js';
import { connectAs } from '../harness/jwt.js';

const chatHandler = chat as unknown as Handler;
const chromium = await launchChromium();
t.teardown(() => chromium.close());

async function chatPage(url: string): Promise<Page> {
  const page = await chromium.browser.newPage();
  t.teardown(() => page.close());
  await page.goto(url);
  await page.waitForSelector('#status.on', { timeout: 10_000 });
  return page;
}
const say = async (page: Page, text: string) => {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
};
const logHas = (page: Page, text: string) => page.waitForFunction((s) => document.getElementById('log')!.innerText.includes(s), text, { timeout: 10_000 });

t.test('two tabs chat through `wsgw local` (the page it serves at /)', async (t) => {
  const g = await startGateway({ handler: chatHandler, flags: { demo: true } });
  t.teardown(() => g.close());
  const base = `http://127.0.0.1:${g.gw.port}/`;
  const ann = await chatPage(`${base}?name=ann`);
  const bob = await chatPage(`${base}?name=bob`);
  await logHas(ann, 'bob joined');
  await say(bob, 'hello ann');
  await logHas(ann, 'hello ann');
  await say(ann, 'hi bob');
  await logHas(bob, 'hi bob');
  // her own copy comes through the same broadcast, not necessarily before bob's
  await logHas(ann, 'hi bob');
  t.match(await ann.locator('#log').innerText(), /ann\s*hi bob/, 'ann sees her own line too');
  const shot = screenshotPath('chat.png');
  await ann.screenshot({ path: shot });
  t.ok(statSync(shot).size > 5_000, 'screenshot of the chat page taken');
});

t.test('two tabs on two gateways chat through NATS with a worker', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const g0 = await startGateway({ natsUrl: nats.url, prefix, flags: { demo: true } });
  const g1 = await startGateway({ natsUrl: nats.url, prefix, flags: { demo: true } });
  t.teardown(() => Promise.all([g0.close(), g1.close()]));
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: chatHandler });
  t.teardown(() => w.close());
  const ann = await chatPage(`http://127.0.0.1:${g0.gw.port}/?name=ann`);
  const bob = await chatPage(`http://127.0.0.1:${g1.gw.port}/?name=bob`);
  await logHas(ann, 'bob joined');
  await say(bob, 'across gateways');
  await logHas(ann, 'across gateways');
  t.pass('a message from gateway 1 reached the tab on gateway 0');
  t.equal(new URL(await ann.evaluate(() => location.href)).port, String(g0.gw.port));
  t.match(await bob.locator('#status').innerText(), new RegExp(`:${g1.gw.port}`), 'each tab is connected to its own gateway');
});

t.test('admin page: token, live list within a second, search, send, broadcast, close', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  // topic history on: the page shows a topic's last broadcasts
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  await ensureHistoryStream(nc, createSubjects(prefix), { perTopic: 100, ttlS: 600, maxBytes: 8 * 1024 * 1024 }, 1, quietLog);
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags: { token: 'admin-secret' } });
  t.teardown(() => svc.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, handler: chatHandler, flags: { demo: true } });
  t.teardown(() => g.close());

  const admin = await chromium.browser.newPage();
  t.teardown(() => admin.close());
  await admin.goto(`${svc.url}/ui`);
  await admin.waitForSelector('#login:not([hidden])', { timeout: 10_000 });
  t.pass('without the token the page asks for it');
  await admin.fill('#token', 'admin-secret');
  await admin.press('#token', 'Enter');
  await admin.waitForSelector('#live.on', { timeout: 10_000 });
  await admin.waitForFunction(() => document.getElementById('gateways')!.innerText.includes('alive'), undefined, { timeout: 10_000 });
  t.match(await admin.locator('#gateways').innerText(), new RegExp(g.gw.id), 'the gateway is listed, alive');

  const user = await chatPage(`http://127.0.0.1:${g.gw.port}/?name=ann&room=lobby`);
  const opened = Date.now();
  await user.waitForFunction(() => document.getElementById('status')!.title.startsWith('connection '), undefined, { timeout: 10_000 });
  const id = (await user.evaluate(() => document.getElementById('status')!.title.slice('connection '.length))) as string;
  await admin.waitForSelector(`tr[data-id="${id}"]`, { timeout: 5_000 });
  const listedMs = Date.now() - opened;
  t.ok(listedMs < 1_000, `listed ${listedMs} ms after the connection opened`);
  t.match(await admin.locator(`tr[data-id="${id}"]`).innerText(), /room-lobby/, 'with its topics');

  // a second connection, then search narrows the list to one
  const other = await chatPage(`http://127.0.0.1:${g.gw.port}/?name=bob&room=kitchen`);
  await admin.waitForFunction(() => document.querySelectorAll('#connections tr').length === 2, undefined, { timeout: 5_000 });
  await admin.fill('#search', 'kitchen');
  await admin.waitForFunction(() => document.querySelectorAll('#connections tr').length === 1, undefined, { timeout: 5_000 });
  t.notOk(await admin.locator(`tr[data-id="${id}"]`).count(), 'search filters by topic');
  await admin.fill('#search', '');
  await admin.waitForSelector(`tr[data-id="${id}"]`);
  await admin.waitForFunction((gw) => document.querySelector(`tr[data-gateway="${gw}"]`)?.children[2]?.textContent === '2', g.gw.id, { timeout: 5_000 });
  t.pass('the gateway row counts its two connections');

  await admin.fill(`tr[data-id="${id}"] input.msg`, 'hello from the admin page');
  await admin.click(`tr[data-id="${id}"] button:has-text("send")`);
  await logHas(user, 'hello from the admin page');
  t.pass('the page under test received the message');

  await admin.fill(`tr[data-id="${id}"] input.meta`, 'plan=pro');
  await admin.click(`tr[data-id="${id}"] button:has-text("set")`);
  await admin.waitForFunction((rid) => document.querySelector(`tr[data-id="${rid}"]`)?.textContent?.includes('"plan":"pro"'), id, { timeout: 5_000 });
  t.pass('metadata set from the page, and the row shows it live');

  await admin.fill('#topic', 'room-kitchen');
  await admin.fill('#topic-text', 'kitchen news');
  await admin.click('#broadcast button');
  await logHas(other, 'kitchen news');
  t.pass('broadcast reached the topic');
  await admin.click('#show-history');
  await admin.waitForFunction(() => document.getElementById('history')!.innerText.includes('kitchen news'), undefined, { timeout: 5_000 });
  t.pass('and the topic\'s history shows it');

  await admin.fill(`tr[data-id="${id}"] input.code`, '4321');
  const shot = screenshotPath('admin.png');
  await admin.screenshot({ path: shot, fullPage: true });
  t.ok(statSync(shot).size > 5_000, 'screenshot of the admin page taken');
  await admin.click(`tr[data-id="${id}"] button:has-text("close")`);
  await logHas(user, 'closed by the server: 4321 closed from the admin page');
  await admin.waitForSelector(`tr[data-id="${id}"]`, { state: 'detached', timeout: 5_000 });
  t.pass('closed with the chosen code, and gone from the list');
});

t.test("admin page: a user's every connection signed out from one row", async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const secret = 'admin-page-user-secret';
  const svc = await startConnectionService({ natsUrl: nats.url, prefix });
  t.teardown(() => svc.close());
  const g0 = await startGateway({ natsUrl: nats.url, prefix, id: 'gwu0', flags: { jwtSecret: secret } });
  const g1 = await startGateway({ natsUrl: nats.url, prefix, id: 'gwu1', flags: { jwtSecret: secret } });
  t.teardown(() => Promise.all([g0.close(), g1.close()]));
  const as = (url: string, sub: string) => connectAs(url, sub, secret);
  // ann on two gateways (two devices), bob on one
  const ann0 = await as(g0.url, 'ann');
  const ann1 = await as(g1.url, 'ann');
  const bob = await as(g0.url, 'bob');
  t.teardown(() => Promise.all([ann0.close(), ann1.close(), bob.close()]));

  const admin = await chromium.browser.newPage();
  t.teardown(() => admin.close());
  await admin.goto(`${svc.url}/ui`);
  await admin.waitForFunction(() => document.querySelectorAll('#connections tr').length === 3, undefined, { timeout: 10_000 });
  const annRow = admin.locator('#connections tr', { hasText: '"sub":"ann"' }).first();
  await annRow.locator('input.code').fill('4403');
  await annRow.locator('button:has-text("sign out user")').click();
  t.match(await ann0.waitClosed(), { code: 4403, reason: 'signed out from the admin page' }, "ann's connection on one gateway closed");
  t.match(await ann1.waitClosed(), { code: 4403 }, 'and on the other');
  await admin.waitForFunction(() => document.querySelectorAll('#connections tr').length === 1, undefined, { timeout: 5_000 });
  t.match(await admin.locator('#connections').innerText(), /"sub":"bob"/, "bob's row stays");
  await admin.waitForFunction(() => document.body.innerText.includes('signed out ann: 2 connections closed'), undefined, { timeout: 5_000 });
  t.pass('the page says how many it closed');
  t.equal(bob.closed, null, "bob's connection stayed open");
});

t.test('the browser client (/wsgw-client.js) in Chromium: its WebSocket, queued sends, a reconnect the gateway asks for', async (t) => {
  const g = await startGateway({
    handler: { message: (conn, msg) => conn.send(`echo ${msg.text()}`) },
    flags: { maxConnectionAge: 1 },
  });
  t.teardown(() => g.close());
  const page = await chromium.browser.newPage();
  t.teardown(() => page.close());
  // a page of the gateway's own origin (its health answer), so the module loads as any page of the site would
  await page.goto(`http://127.0.0.1:${g.gw.port}/healthz`);
  const got = await page.evaluate(async (url) => {
    const { WsgwClient } = await import('/wsgw-client.js');
    const c = new WsgwClient(url, { initialDelay: 50 });
    const events: string[] = [];
    const echoes: string[] = [];
    c.on('message', (d: string) => echoes.push(d));
    c.on('close', (i: { code: number; reconnecting: boolean }) => events.push(`close ${i.code} ${i.reconnecting}`));
    c.on('open', () => events.push('open'));
    c.send('queued before open');
    const until = (ok: () => boolean) =>
      new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 8_000;
        const poll = () => (ok() ? resolve() : Date.now() > deadline ? reject(new Error(events.join('; '))) : setTimeout(poll, 20));
        poll();
      });
    await until(() => echoes.length === 1);
    await until(() => events.filter((e) => e === 'open').length === 2);
    c.send('after the reconnect');
    await until(() => echoes.length === 2);
    c.close();
    return { events, echoes, state: c.state };
  }, g.url);
  t.same(got.echoes, ['echo queued before open', 'echo after the reconnect']);
  t.same(got.events.slice(0, 3), ['open', 'close 4104 true', 'open'], 'closed for age by the gateway, back by itself');
  t.equal(got.state, 'closed');
});
