/**
 * An in-process MQTT broker (aedes over node:net) for the demo and for tests that do not need mosquitto.
 * aedes speaks MQTT 3.1.1 only: connect MqttLink to it with protocolVersion 4. Production runs mosquitto.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBrokerOptions {
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1: the broker is not reachable from the network unless asked. */
  readonly host?: string;
}

export interface EmbeddedBroker {
  /** mqtt://host:port */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** Clients connected right now. */
  connectedClients(): number;
  /** Disconnects every client and stops listening. */
  close(): Promise<void>;
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const broker = await Aedes.createBroker();
  const server: Server = createServer(broker.handle);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      `cannot start the embedded MQTT broker on ${host}:${options.port ?? 0}: ${code ?? (err as Error).message}` +
        (code === 'EADDRINUSE' ? ' (another broker already listens there: stop it or choose another port)' : ''),
    );
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 0);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    host,
    connectedClients: () => broker.connectedClients,
    close() {
      closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await serverClosed;
      })();
      return closing;
    },
  };
}
