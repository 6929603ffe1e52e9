/**
 * PROXY protocol headers as a balancer writes them (v1 text, v2 binary), for tests that
 * play the balancer over a raw socket. Written from the specification, apart from the
 * gateway's parser.
 */
import { isIPv4, type Socket } from 'node:net';
import { Duplex } from 'node:stream';

export function proxyV1(
  source: string,
  sourcePort: number,
  destination = isIPv4(source) ? '192.0.2.1' : '2001:db8::1',
  destinationPort = 25,
): Buffer {
  const family = isIPv4(source) ? 'TCP4' : 'TCP6';
  return Buffer.from(
    `PROXY ${family} ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`,
    'latin1',
  );
}

export function proxyV2(
  source: string,
  sourcePort: number,
  destination = isIPv4(source) ? '192.0.2.1' : '2001:db8::1',
  destinationPort = 25,
): Buffer {
  const v4 = isIPv4(source);
  const block = Buffer.concat([
    addressBytes(source),
    addressBytes(destination),
    Buffer.from([sourcePort >> 8, sourcePort & 0xff, destinationPort >> 8, destinationPort & 0xff]),
  ]);
  return Buffer.concat([
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
    Buffer.from([0x21, v4 ? 0x11 : 0x21, block.length >> 8, block.length & 0xff]),
    block,
  ]);
}

function addressBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  const [head = '', tail = ''] = address.split('::');
  const words = (text: string): number[] =>
    text === '' ? [] : text.split(':').map((word) => parseInt(word, 16));
  const front = words(head);
  const back = words(tail);
  const all = address.includes('::')
    ? [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back]
    : front;
  const bytes = Buffer.alloc(16);
  all.forEach((word, i) => bytes.writeUInt16BE(word, 2 * i));
  return bytes;
}

/**
 * `raw` as a stream whose first write carries `header` in front, in one TCP write: a
 * TLS client over it sends the header and its ClientHello together, as a balancer that
 * relays a client's first bytes at once does.
 */
export function headerInFirstWrite(raw: Socket, header: Buffer): Duplex {
  let prefix: Buffer | null = header;
  const stream = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      const bytes = prefix === null ? chunk : Buffer.concat([prefix, chunk]);
      prefix = null;
      raw.write(bytes, callback);
    },
    final(callback) {
      raw.end(callback);
    },
    read() {
      raw.resume();
    },
    destroy(error, callback) {
      raw.destroy();
      callback(error);
    },
  });
  raw.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) raw.pause();
  });
  raw.on('end', () => stream.push(null));
  raw.on('error', (error) => stream.destroy(error));
  raw.on('close', () => stream.destroy());
  return stream;
}
