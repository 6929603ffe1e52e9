/**
 * A TCP forwarder between the bridge and its gateway that a test can break the two ways a
 * gateway goes away: `cut` (every connection closed, as the gateway's BYE and close) and
 * `silence` (the connections stay open and nothing more passes either way, as a gateway
 * or network gone without a close). Connections made after either are forwarded as usual,
 * so a reconnect reaches the server.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface GatewayLink {
  port: number;
  /** Connections open now. */
  connections(): number;
  cut(): void;
  silence(): void;
  close(): Promise<void>;
}

export async function startGatewayLink(targetPort: number): Promise<GatewayLink> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    for (const socket of pair) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cut = (): void => {
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream.destroy();
    }
  };
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => pairs.size,
    cut,
    silence: () => {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        cut();
        server.close(() => resolve());
      }),
  };
}
