// node_proxy.js - Node's http and tls modules through ferry, for ferry's real-clients suite.
//
//   node node_proxy.js PROXYPORT HTTPURL HTTPSHOSTPORT CAFILE
//
// HTTPURL is the base of tests/origin (http://NAME:PORT); HTTPSHOSTPORT the TLS port of
// tests/clients/origin.py as NAME:PORT (its certificate, CAFILE, names NAME). Node has no
// proxy support of its own: what people write is http.request to the proxy with the
// absolute URL as path, and for https a CONNECT made with http.request({method: 'CONNECT'})
// whose socket tls.connect() takes over. Each check prints "ok ..."; the first failure
// exits 1. Steps:
//   get       absolute-form GET of a chunked and a Content-Length body, byte for byte, Via
//   post      a chunked POST written in 20 pieces, with a trailer field, echoed whole
//   expect    a POST with Expect: 100-continue: the body is written on 'continue'
//   keepalive a keep-alive Agent with one socket: 5 requests, the last 4 on a reused socket
//   connect   CONNECT, then TLS over the tunnel (verified), GET /len/100000 inside it
'use strict';
const http = require('http');
const tls = require('tls');
const fs = require('fs');

const [proxyPort, httpBase, httpsHostPort, caFile] = process.argv.slice(2);
const proxy = { host: '127.0.0.1', port: Number(proxyPort) };

function fail(what) {
  console.log('FAILED: ' + what);
  process.exit(1);
}

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 97 + (i % 26);
  return b;
}

// One request to the proxy with the absolute URL as the path; resolves {res, body}.
function request(method, path, opts, write) {
  return new Promise((resolve, reject) => {
    const url = new URL(httpBase + path);
    const req = http.request({ ...proxy, method, path: url.href, agent: opts.agent,
      headers: { Host: url.host, ...(opts.headers || {}) } }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ res, body: Buffer.concat(parts), req }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (write) write(req);
    else req.end();
  });
}

async function main() {
  for (const [path, n] of [['/chunked/300000', 300000], ['/len/300000', 300000]]) {
    const { res, body } = await request('GET', path, {});
    if (res.statusCode !== 200 || !body.equals(pattern(n)))
      fail(`GET ${path}: ${res.statusCode}, ${body.length} bytes`);
    if (!/^1\.1 /.test(res.headers.via || '')) fail(`GET ${path}: no Via`);
  }
  console.log('ok get');

  const pieces = [];
  for (let i = 0; i < 20; i++) pieces.push(Buffer.alloc(50000 + i * 333, i + 1));
  const sent = Buffer.concat(pieces);
  let r = await request('POST', '/echo', { headers: { Trailer: 'X-Checksum' } }, (req) => {
    for (const p of pieces) req.write(p);
    req.addTrailers({ 'X-Checksum': String(sent.length) });
    req.end();
  });
  if (r.res.statusCode !== 200 || !r.body.equals(sent))
    fail(`chunked POST: ${r.res.statusCode}, ${r.body.length} of ${sent.length} bytes`);
  console.log('ok post', sent.length);

  let continued = false;
  r = await request('POST', '/echo', { headers: { Expect: '100-continue',
    'Content-Length': String(sent.length) } }, (req) => {
    req.on('continue', () => { continued = true; req.end(sent); });
  });
  if (!continued || r.res.statusCode !== 200 || !r.body.equals(sent))
    fail(`Expect POST: continue=${continued}, ${r.res.statusCode}, ${r.body.length} bytes`);
  console.log('ok expect');

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let reused = 0;
  for (let i = 0; i < 5; i++) {
    const { res, body, req } = await request('GET', `/len/${1000 + i}`, { agent });
    if (res.statusCode !== 200 || !body.equals(pattern(1000 + i))) fail(`keep-alive GET ${i}`);
    if (req.reusedSocket) reused++;
  }
  agent.destroy();
  if (reused !== 4) fail(`keep-alive: ${reused} of 4 requests on a reused socket`);
  console.log('ok keepalive');

  const [name, port] = [httpsHostPort.replace(/:\d+$/, ''), httpsHostPort.replace(/^.*:/, '')];
  const got = await new Promise((resolve, reject) => {
    const req = http.request({ ...proxy, method: 'CONNECT', path: httpsHostPort });
    req.on('connect', (res, socket, head) => {
      if (res.statusCode !== 200) fail(`CONNECT: ${res.statusCode}`);
      if (head.length) socket.unshift(head);
      const s = tls.connect({ socket, servername: name, ca: fs.readFileSync(caFile) }, () => {
        s.write(`GET /len/100000 HTTP/1.1\r\nHost: ${name}:${port}\r\nConnection: close\r\n\r\n`);
      });
      const parts = [];
      s.on('data', (d) => parts.push(d));
      s.on('end', () => resolve(Buffer.concat(parts)));
      s.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  const sep = got.indexOf('\r\n\r\n');
  if (!/^HTTP\/1\.1 200 /.test(got.toString('latin1', 0, 20)) || sep < 0 ||
      !got.subarray(sep + 4).equals(pattern(100000)))
    fail(`GET through the tunnel: ${got.length} bytes: ${got.toString('latin1', 0, 80)}`);
  console.log('ok connect');
}

main().catch((e) => fail(String(e && e.stack || e)));
