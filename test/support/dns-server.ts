/**
 * A real, small authoritative DNS server for tests: UDP on 127.0.0.1 (node:dgram), speaking
 * RFC 1035 to whatever resolver asks, Node's c-ares included. It is not a mock: the code
 * under test sends real queries over a real socket and parses real answers. It serves TXT
 * records from a map the test changes as it goes; a name in the map answers its TXT records
 * (other types: no data), any other name NXDOMAIN. One question per query, no TCP, no
 * compression in questions (resolvers send none), no EDNS in answers.
 */
import dgram from 'node:dgram';

const TYPE_TXT = 16;
const CLASS_IN = 1;
const RCODE = { noError: 0, formErr: 1, nxDomain: 3, notImp: 4 } as const;

export interface DnsTestServer {
  /** `127.0.0.1:<port>`, as WOOLLY_DNS_SERVERS takes it. */
  address: string;
  port: number;
  /** TXT values by name (lower case, no trailing dot), one record each; [] answers no data. */
  txt: Map<string, string[]>;
  /** Every question received, in order. */
  queries: { name: string; type: number }[];
  release(): Promise<void>;
}

interface Question {
  name: string;
  type: number;
  class: number;
  /** Offset just after the question, so the answer can copy it byte for byte. */
  end: number;
}

/** Reads the one question of a query, or null when the message is malformed. */
function readQuestion(message: Buffer): Question | null {
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    const length = message[offset];
    if (length === undefined || length > 63) return null;
    offset += 1;
    if (length === 0) break;
    if (offset + length > message.length) return null;
    labels.push(message.toString('latin1', offset, offset + length));
    offset += length;
  }
  if (offset + 4 > message.length) return null;
  return {
    name: labels.join('.').toLowerCase(),
    type: message.readUInt16BE(offset),
    class: message.readUInt16BE(offset + 2),
    end: offset + 4,
  };
}

/** A TXT record's RDATA: the value as character-strings of at most 255 bytes. */
function txtRdata(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const chunks: Buffer[] = [];
  // An empty value is still one (empty) character-string.
  for (let start = 0; start < bytes.length || start === 0; start += 255) {
    const chunk = bytes.subarray(start, start + 255);
    chunks.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(chunks);
}

function header(query: Buffer, rcode: number, counts: { qd: number; an: number }): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  const queryFlags = query.readUInt16BE(2);
  // QR (a response), the query's opcode and RD echoed, AA (authoritative), the rcode.
  out.writeUInt16BE(0x8000 | (queryFlags & 0x7800) | 0x0400 | (queryFlags & 0x0100) | rcode, 2);
  out.writeUInt16BE(counts.qd, 4);
  out.writeUInt16BE(counts.an, 6);
  return out;
}

/** The response to one query message, or null when it cannot even be answered. */
function respond(query: Buffer, txt: Map<string, string[]>, seen: DnsTestServer['queries']): Buffer | null {
  if (query.length < 12 || (query.readUInt16BE(2) & 0x8000) !== 0) return null;
  const opcode = (query.readUInt16BE(2) >> 11) & 0x0f;
  if (opcode !== 0) return header(query, RCODE.notImp, { qd: 0, an: 0 });
  const question = query.readUInt16BE(4) === 1 ? readQuestion(query) : null;
  if (!question) return header(query, RCODE.formErr, { qd: 0, an: 0 });
  seen.push({ name: question.name, type: question.type });
  const echoed = query.subarray(12, question.end);
  const values = txt.get(question.name);
  if (!values) return Buffer.concat([header(query, RCODE.nxDomain, { qd: 1, an: 0 }), echoed]);
  const answers =
    question.type === TYPE_TXT && question.class === CLASS_IN
      ? values.map((value) => {
          const rdata = txtRdata(value);
          const fixed = Buffer.alloc(12);
          fixed.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
          fixed.writeUInt16BE(TYPE_TXT, 2);
          fixed.writeUInt16BE(CLASS_IN, 4);
          fixed.writeUInt32BE(60, 6); // TTL
          fixed.writeUInt16BE(rdata.length, 10);
          return Buffer.concat([fixed, rdata]);
        })
      : [];
  return Buffer.concat([header(query, RCODE.noError, { qd: 1, an: answers.length }), echoed, ...answers]);
}

/** Starts the server on a free UDP port of 127.0.0.1. */
export async function startDnsServer(): Promise<DnsTestServer> {
  const socket = dgram.createSocket('udp4');
  const txt = new Map<string, string[]>();
  const queries: DnsTestServer['queries'] = [];
  socket.on('message', (message, remote) => {
    const response = respond(message, txt, queries);
    if (response) socket.send(response, remote.port, remote.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    port,
    txt,
    queries,
    release: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
