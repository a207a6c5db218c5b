import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, test } from 'node:test';
import { type DnsTestServer, startDnsServer } from './dns-server.ts';

let server: DnsTestServer;
let resolver: Resolver;

before(async () => {
  server = await startDnsServer();
  resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([server.address]);
});

after(async () => {
  await server.release();
});

/** The code node:dns rejects a TXT lookup with. */
async function failure(name: string): Promise<string> {
  const error = await resolver.resolveTxt(name).then(
    () => assert.fail(`${name} resolved`),
    (caught: { code?: string }) => caught,
  );
  return String(error.code);
}

describe('the test DNS server, asked by node:dns', () => {
  test('answers the TXT records of a name, each as its own record', async () => {
    server.txt.set('_woolly-challenge.chess.example', ['woolly-verification=abc', 'other']);
    const records = await resolver.resolveTxt('_woolly-challenge.chess.example');
    assert.deepEqual(records.map((chunks) => chunks.join('')).sort(), ['other', 'woolly-verification=abc']);
    assert.deepEqual(server.queries.at(-1), { name: '_woolly-challenge.chess.example', type: 16 });
  });

  test('names match whatever their case, and a trailing dot is the same name', async () => {
    server.txt.set('case.example', ['v']);
    assert.deepEqual(await resolver.resolveTxt('CASE.Example.'), [['v']]);
  });

  test('a value longer than 255 bytes comes back whole, in character-strings', async () => {
    const long = 'x'.repeat(600);
    server.txt.set('long.example', [long]);
    const [record] = await resolver.resolveTxt('long.example');
    assert.deepEqual(
      record?.map((chunk) => chunk.length),
      [255, 255, 90],
    );
    assert.equal(record?.join(''), long);
  });

  test('an unknown name is NXDOMAIN, a known name without TXT records has no data', async () => {
    assert.equal(await failure('missing.example'), 'ENOTFOUND');
    server.txt.set('empty.example', []);
    assert.equal(await failure('empty.example'), 'ENODATA');
  });

  test('a malformed query gets FORMERR, with the id echoed', async () => {
    const client = dgram.createSocket('udp4');
    try {
      const reply = new Promise<Buffer>((resolve) => client.once('message', resolve));
      // A header saying one question, followed by a label that runs past the end.
      client.send(
        Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, 0x61]),
        server.port,
        '127.0.0.1',
      );
      const response = await reply;
      assert.equal(response.readUInt16BE(0), 0x1234);
      assert.equal(response.readUInt16BE(2) & 0x8000, 0x8000);
      assert.equal(response.readUInt16BE(2) & 0x000f, 1);
    } finally {
      client.close();
    }
  });
});
