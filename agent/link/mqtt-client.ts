/**
 * The MQTT connection of the DSO link: the only module that imports `mqtt`.
 *
 * - MQTT 5 (3.1.1 for brokers without 5, such as the embedded aedes), QoS 1, clean start false with a session expiry,
 *   so the broker keeps our subscriptions and queues what is sent to us while we are away.
 * - connect() returns at once and retries for ever: the agent starts and runs while the broker is down.
 * - On every (re)connect a signed session birth goes to node/{address}/birth and a retained 'online' to
 *   node/{address}/availability; the last will is a retained, signed 'offline' on the same topic.
 * - publish() resolves when the broker's PUBACK arrives and rejects while offline or when the connection drops
 *   before the PUBACK, so the outbox marks an item sent only when the broker has it, and resends everything else.
 *   Publishes that were in flight when a connection dropped are not resent by mqtt.js: the outbox replays them.
 */
import { readFileSync } from 'node:fs';
import { connect, ErrorWithReasonCode, type IClientOptions, type MqttClient, ReasonCodes } from 'mqtt';
import type { Clock, TimerHandle } from '../clock.js';
import type { CanonicalValue } from '../ledger/canonical.js';
import type { Logger } from '../logger.js';
import type { EnvelopeBody, EnvelopeSealer } from './envelope.js';
import { assertPublishTopic, type LinkTopics, topicMatches, validateFilter } from './topics.js';

export type LinkState = 'idle' | 'connecting' | 'online' | 'offline' | 'refused' | 'closed';

export interface LinkTls {
  /** Path of the CA certificate(s) that signed the broker's certificate (PEM). */
  readonly ca?: string;
  /** Path of this client's certificate (PEM), when the broker requires client certificates. */
  readonly cert?: string;
  /** Path of this client's private key (PEM). */
  readonly key?: string;
  /** Default true. Turning it off accepts any broker certificate: for a lab only. */
  readonly rejectUnauthorized?: boolean;
  /** Host name to check the broker certificate against, when it differs from the URL's. */
  readonly servername?: string;
}

export interface MqttLinkOptions {
  /** mqtt://host:1883 or mqtts://host:8883. */
  readonly url: string;
  /** Signs birth and availability; gives the address, chain and session. Shared with the outbox. */
  readonly sealer: EnvelopeSealer;
  readonly topics: LinkTopics;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Stable across restarts (the broker keeps the session by it). Default mgmc-{address lower-case, no 0x}. */
  readonly clientId?: string;
  /** 5 (default) or 4 (MQTT 3.1.1: no session expiry, no reason codes; for aedes). */
  readonly protocolVersion?: 4 | 5;
  /** How long the broker keeps our session (subscriptions, queued messages) while we are away. Default 7 days. */
  readonly sessionExpirySeconds?: number;
  readonly keepaliveSeconds?: number;
  readonly reconnectPeriodMs?: number;
  readonly connectTimeoutMs?: number;
  readonly username?: string;
  readonly password?: string;
  readonly tls?: LinkTls;
  /** Publish birth, availability and the last will on node/{address}/... (default true; a DSO node may not). */
  readonly announce?: boolean;
  /** Extra fields for each birth body (software version, outbox depth, ...). */
  readonly birthBody?: () => EnvelopeBody;
}

export interface LinkMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly retain: boolean;
  readonly dup: boolean;
}

export type MessageHandler = (message: LinkMessage) => void | Promise<void>;

export interface StateChange {
  readonly state: LinkState;
  readonly previous: LinkState;
  /** Successful connections so far in this process (the birth carries it). */
  readonly connections: number;
  /** Why, for a person (lost connection, refused credentials, ...). */
  readonly reason?: string;
}

export type LinkErrorCode = 'offline' | 'closed' | 'refused' | 'bad-topic' | 'config';

export class LinkError extends Error {
  override name = 'LinkError';
  constructor(
    message: string,
    readonly code: LinkErrorCode,
    readonly topic?: string,
    /** The broker's MQTT 5 reason code, when it gave one (0x87 = not authorized). */
    readonly reasonCode?: number,
  ) {
    super(message);
  }
}

interface SubscriptionEntry {
  readonly handlers: Set<MessageHandler>;
  active: boolean;
  waiters: { resolve: () => void; reject: (err: Error) => void }[];
}

const DEFAULT_SESSION_EXPIRY = 7 * 24 * 3600;
const CLOSE_GRACE_MS = 3000;

export class MqttLink {
  private client: MqttClient | undefined;
  private current: LinkState = 'idle';
  private connections = 0;
  private readonly listeners = new Set<(change: StateChange) => void>();
  private readonly subscriptions = new Map<string, SubscriptionEntry>();
  private readonly log: Logger;
  private readonly announce: boolean;
  private readonly clientId: string;
  private readonly protocolVersion: 4 | 5;
  private lastProblem: string | undefined;

  constructor(private readonly options: MqttLinkOptions) {
    this.log = options.logger.child({ module: 'link' });
    this.announce = options.announce ?? true;
    this.protocolVersion = options.protocolVersion ?? 5;
    this.clientId = options.clientId ?? `mgmc-${options.sealer.address.toLowerCase().slice(2)}`;
    if (options.topics.chainId !== options.sealer.chainId) {
      throw new LinkError(
        `link topics are for chain ${options.topics.chainId} but envelopes are sealed for chain ${options.sealer.chainId}`,
        'config',
      );
    }
  }

  get state(): LinkState {
    return this.current;
  }

  get online(): boolean {
    return this.current === 'online';
  }

  get url(): string {
    return this.options.url;
  }

  /** Successful connections so far in this process. */
  get connectionCount(): number {
    return this.connections;
  }

  /** Listens to state changes; returns a function that stops listening. */
  onState(listener: (change: StateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Starts connecting and returns at once; the link retries until close(). Throws a LinkError (code 'config') when a
   * TLS file cannot be read: that is a configuration error, not a broker outage.
   */
  connect(): void {
    if (this.client !== undefined) throw new LinkError('connect() was already called on this link', 'config');
    const o = this.options;
    const mqttOptions: IClientOptions = {
      clientId: this.clientId,
      protocolVersion: this.protocolVersion,
      clean: false,
      keepalive: o.keepaliveSeconds ?? 30,
      reconnectPeriod: o.reconnectPeriodMs ?? 2000,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      reconnectOnConnackError: true,
      resubscribe: false,
      queueQoSZero: false,
      ...(this.protocolVersion === 5
        ? { properties: { sessionExpiryInterval: o.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY } }
        : {}),
      ...(o.username === undefined ? {} : { username: o.username }),
      ...(o.password === undefined ? {} : { password: o.password }),
      ...this.tlsOptions(),
      ...(this.announce ? { will: this.will() } : {}),
    };
    this.setState('connecting');
    const client = connect(o.url, mqttOptions);
    this.client = client;
    client.on('connect', (connack) => this.onConnect(connack.sessionPresent === true));
    client.on('reconnect', () => {
      // mqtt.js rebuilds the will from options.will on each attempt: give every connection a fresh signed will.
      if (this.announce) client.options.will = this.will();
    });
    client.on('close', () => this.onClose());
    client.on('error', (err) => this.onError(err));
    client.on('disconnect', (packet) => {
      const rc = packet.reasonCode ?? 0;
      this.log.warn(
        { url: o.url, reasonCode: rc },
        `broker ${o.url} disconnected us: ${ReasonCodes[rc as keyof typeof ReasonCodes] || 'no reason'} (0x${rc.toString(16)})` +
          (rc === 0x8e ? '; another client uses the same client id: give each agent its own identity' : ''),
      );
    });
    client.on('message', (topic, payload, packet) => this.dispatch(topic, payload, packet.retain, packet.dup));
  }

  /**
   * Publishes `payload` (an envelope's bytes) with QoS 1; resolves on the broker's PUBACK. Rejects with a LinkError:
   * 'offline' while not connected or when the connection drops first (the outbox keeps the item and retries),
   * 'refused' when the broker answers with an error reason code (0x87: the ACL does not allow this topic),
   * 'bad-topic' for a wildcard or malformed topic.
   */
  publish(topic: string, payload: Uint8Array, options: { retain?: boolean } = {}): Promise<void> {
    try {
      assertPublishTopic(topic);
    } catch (err) {
      return Promise.reject(new LinkError((err as Error).message, 'bad-topic', topic));
    }
    if (this.current === 'closed') {
      return Promise.reject(new LinkError(`cannot publish to ${topic}: the link is closed`, 'closed', topic));
    }
    if (!this.online) {
      return Promise.reject(
        new LinkError(
          `cannot publish to ${topic}: not connected to the broker at ${this.options.url} (${this.current}); kept for retry`,
          'offline',
          topic,
        ),
      );
    }
    return this.rawPublish(topic, payload, options.retain ?? false);
  }

  /**
   * Subscribes `handler` to `filter` (QoS 1). Resolves when the broker has granted the subscription (after the next
   * connect when offline); rejects with a LinkError 'refused' when the broker refuses it. Call it before connect():
   * the broker delivers what it queued for this session right after the CONNACK.
   */
  subscribe(filter: string, handler: MessageHandler): Promise<void> {
    try {
      validateFilter(filter);
    } catch (err) {
      return Promise.reject(new LinkError((err as Error).message, 'bad-topic', filter));
    }
    if (this.current === 'closed') return Promise.reject(new LinkError('the link is closed', 'closed', filter));
    let entry = this.subscriptions.get(filter);
    if (entry === undefined) {
      entry = { handlers: new Set(), active: false, waiters: [] };
      this.subscriptions.set(filter, entry);
    }
    entry.handlers.add(handler);
    if (entry.active) return Promise.resolve();
    const waiting = entry;
    const promise = new Promise<void>((resolve, reject) => waiting.waiters.push({ resolve, reject }));
    if (this.online) this.sendSubscribe([filter]);
    return promise;
  }

  /** Removes `handler` (all handlers of `filter` when omitted); unsubscribes at the broker when none is left. */
  async unsubscribe(filter: string, handler?: MessageHandler): Promise<void> {
    const entry = this.subscriptions.get(filter);
    if (entry === undefined) return;
    if (handler !== undefined) entry.handlers.delete(handler);
    if (handler !== undefined && entry.handlers.size > 0) return;
    this.subscriptions.delete(filter);
    for (const w of entry.waiters) w.reject(new LinkError(`unsubscribed from ${filter}`, 'closed', filter));
    const client = this.client;
    if (client !== undefined && this.online) {
      await new Promise<void>((resolve) => client.unsubscribe(filter, () => resolve()));
    }
  }

  /**
   * Leaves cleanly: publishes a retained 'offline' (the will is discarded on a normal DISCONNECT), disconnects, and
   * stops retrying. Pending subscribe() calls are rejected.
   */
  async close(): Promise<void> {
    const client = this.client;
    if (this.current === 'closed') return;
    const wasOnline = this.online;
    if (client !== undefined && wasOnline && this.announce) {
      const offline = this.options.sealer.seal('availability', this.availabilityBody('offline', 'close'));
      const publishing = this.rawPublish(
        this.options.topics.node(this.options.sealer.address, 'availability'),
        offline.bytes,
        true,
      );
      await this.withTimeout(publishing, CLOSE_GRACE_MS).catch((err: Error) =>
        this.log.warn({ err: err.message }, 'could not publish availability offline while closing'),
      );
    }
    this.setState('closed', 'closed by the agent');
    for (const entry of this.subscriptions.values()) {
      for (const w of entry.waiters.splice(0)) w.reject(new LinkError('the link was closed', 'closed'));
    }
    if (client === undefined) return;
    await this.withTimeout(
      new Promise<void>((resolve) => {
        if (wasOnline) client.end(false, { reasonCode: 0 }, () => resolve());
        else client.end(true, () => resolve());
      }),
      CLOSE_GRACE_MS,
    ).catch(() => client.end(true));
  }

  private rawPublish(topic: string, payload: Uint8Array, retain: boolean): Promise<void> {
    const client = this.client;
    if (client === undefined) return Promise.reject(new LinkError('the link was never connected', 'offline', topic));
    const buffer = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    return new Promise<void>((resolve, reject) => {
      client.publish(topic, buffer, { qos: 1, retain }, (err) => {
        if (err === undefined || err === null) {
          resolve();
          return;
        }
        if (err instanceof LinkError) {
          reject(err);
          return;
        }
        const rc = err instanceof ErrorWithReasonCode ? err.code : undefined;
        if (rc !== undefined) {
          reject(
            new LinkError(
              `broker ${this.options.url} refused the message on ${topic}: ${ReasonCodes[rc as keyof typeof ReasonCodes] ?? 'error'} ` +
                `(0x${rc.toString(16)})${rc === 0x87 ? '; the broker ACL does not let this client publish there' : ''}`,
              'refused',
              topic,
              rc,
            ),
          );
          return;
        }
        reject(new LinkError(`publish to ${topic} failed: ${err.message}; kept for retry`, 'offline', topic));
      });
    });
  }

  private onConnect(sessionPresent: boolean): void {
    const client = this.client;
    if (client === undefined || this.current === 'closed') return;
    this.connections += 1;
    this.lastProblem = undefined;
    this.log.info(
      { url: this.options.url, clientId: this.clientId, connection: this.connections, sessionPresent },
      `connected to broker ${this.options.url}`,
    );
    if (this.announce) {
      const { sealer, topics } = this.options;
      const birth = sealer.seal('birth', {
        ...(this.options.birthBody?.() ?? {}),
        clientId: this.clientId,
        connection: this.connections,
        session: sealer.session,
        sessionPresent,
        state: 'online',
      });
      const online = sealer.seal('availability', this.availabilityBody('online'));
      const warn = (what: string) => (err: Error) =>
        this.log.error({ err: err.message }, `could not publish the session ${what}: ${err.message}`);
      this.rawPublish(topics.node(sealer.address, 'birth'), birth.bytes, false).catch(warn('birth'));
      this.rawPublish(topics.node(sealer.address, 'availability'), online.bytes, true).catch(warn('availability'));
    }
    // Subscribe again even when the broker says it kept the session: mosquitto 2.0 restores a persisted session
    // after its own restart without its shared ($share/...) subscriptions, and a duplicate SUBSCRIBE is harmless.
    for (const entry of this.subscriptions.values()) entry.active = false;
    const inactive = [...this.subscriptions.entries()].filter(([, e]) => !e.active).map(([f]) => f);
    if (inactive.length > 0) this.sendSubscribe(inactive);
    this.setState('online');
  }

  private onClose(): void {
    const client = this.client;
    if (client === undefined) return;
    // Fail the publishes still waiting for a PUBACK and drop them from mqtt.js's store, so mqtt.js does not resend
    // them on reconnect: the outbox owns resending (and flags the replay), the broker dedups nothing for us.
    for (const [key, pending] of Object.entries(client.outgoing)) {
      const messageId = Number(key);
      const entry = pending as { cmd?: string; cb?: (err?: Error) => void };
      if (entry.cmd !== 'publish') continue;
      delete client.outgoing[messageId];
      client.outgoingStore.del({ messageId }, () => {});
      entry.cb?.(
        new LinkError(`connection to ${this.options.url} closed before the PUBACK; kept for retry`, 'offline'),
      );
    }
    if (this.current === 'closed') return;
    if (this.current === 'online') {
      this.log.warn({ url: this.options.url }, `lost the connection to broker ${this.options.url}; reconnecting`);
    }
    if (this.current !== 'refused') this.setState('offline', this.lastProblem ?? 'connection closed');
  }

  private onError(err: Error): void {
    const rc = err instanceof ErrorWithReasonCode ? err.code : undefined;
    const code = (err as NodeJS.ErrnoException).code;
    const url = this.options.url;
    let problem: string;
    let refused = false;
    if (rc !== undefined && err.message.startsWith('Connection refused')) {
      refused = true;
      const why = ReasonCodes[rc as keyof typeof ReasonCodes] || 'refused';
      const hint =
        rc === 4 || rc === 0x86
          ? 'check link username and password (and the broker password file)'
          : rc === 5 || rc === 0x87
            ? 'check link username and password (mosquitto answers a wrong password this way), then the ACL for the will topic'
            : 'check the broker log';
      problem = `broker ${url} refused the connection: ${why} (reason ${rc}); ${hint}; retrying`;
    } else if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT') {
      problem = `broker ${url} is not reachable (${code}); the agent keeps working and retries`;
    } else if (
      typeof code === 'string' &&
      (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL'))
    ) {
      problem = `TLS handshake with broker ${url} failed (${code}: ${err.message}); check link.tls.ca and the broker certificate's host name`;
    } else {
      problem = `broker ${url}: ${err.message}`;
    }
    if (problem !== this.lastProblem) {
      (refused || problem.startsWith('TLS') ? this.log.error.bind(this.log) : this.log.warn.bind(this.log))(
        { url, code: code ?? rc },
        problem,
      );
    } else {
      this.log.debug({ url, code: code ?? rc }, problem);
    }
    this.lastProblem = problem;
    if (refused && this.current !== 'closed') this.setState('refused', problem);
  }

  private sendSubscribe(filters: string[]): void {
    const client = this.client;
    if (client === undefined) return;
    const request = Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }]));
    client.subscribe(request, (err, granted) => {
      if (err !== null && (granted === undefined || granted.length === 0)) {
        // The connection dropped before the SUBACK: the filter stays inactive and is sent again on reconnect.
        this.log.debug({ filters, err: err.message }, 'subscribe not acknowledged; will retry after reconnect');
        return;
      }
      for (const grant of granted ?? []) {
        const entry = this.subscriptions.get(grant.topic);
        if (entry === undefined) continue;
        if ((grant.qos & 0x80) !== 0) {
          this.subscriptions.delete(grant.topic);
          const rc = grant.qos;
          const error = new LinkError(
            `broker ${this.options.url} refused the subscription to ${grant.topic}: ` +
              `${ReasonCodes[rc as keyof typeof ReasonCodes] ?? 'failure'} (0x${rc.toString(16)}); check the broker ACL`,
            'refused',
            grant.topic,
            rc,
          );
          this.log.error({ filter: grant.topic, reasonCode: rc }, error.message);
          for (const w of entry.waiters.splice(0)) w.reject(error);
          continue;
        }
        entry.active = true;
        for (const w of entry.waiters.splice(0)) w.resolve();
      }
    });
  }

  private dispatch(topic: string, payload: Buffer, retain: boolean, dup: boolean): void {
    const message: LinkMessage = {
      topic,
      payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
      retain,
      dup,
    };
    let handled = false;
    for (const [filter, entry] of this.subscriptions) {
      if (!topicMatches(filter, topic)) continue;
      handled = true;
      for (const handler of entry.handlers) {
        const failed = (err: unknown) =>
          this.log.error(
            { topic, filter, err: (err as Error)?.message ?? String(err) },
            `message handler for ${filter} failed on a message from ${topic}: ${(err as Error)?.message ?? err}`,
          );
        try {
          const result = handler(message);
          if (result instanceof Promise) result.catch(failed);
        } catch (err) {
          failed(err);
        }
      }
    }
    if (!handled) {
      // A subscription kept by the broker from an earlier run (clean start false) that this run did not register:
      // subscribe before connect() so queued messages find their handler. The sender resends what gets no receipt.
      this.log.warn({ topic }, `message on ${topic} matches no subscription of this agent; dropped`);
    }
  }

  private availabilityBody(state: 'online' | 'offline', reason?: string): EnvelopeBody {
    const body: Record<string, CanonicalValue> = {
      connection: this.connections,
      session: this.options.sealer.session,
      state,
    };
    if (reason !== undefined) body.reason = reason;
    return body;
  }

  private will(): NonNullable<IClientOptions['will']> {
    const { sealer, topics } = this.options;
    // Sealed now, sent by the broker later or never: outside the sequence (seq 0), for the connection being made.
    const sealed = sealer.sealUnsequenced('availability', {
      connection: this.connections + 1,
      reason: 'will',
      session: sealer.session,
      state: 'offline',
    });
    return {
      topic: topics.node(sealer.address, 'availability'),
      payload: Buffer.from(sealed.bytes),
      qos: 1,
      retain: true,
    };
  }

  private tlsOptions(): Partial<IClientOptions> {
    const tls = this.options.tls;
    if (tls === undefined) return {};
    const read = (path: string | undefined, what: string): Buffer | undefined => {
      if (path === undefined) return undefined;
      try {
        return readFileSync(path);
      } catch (err) {
        throw new LinkError(
          `cannot read the TLS ${what} file ${path} (link.tls): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          'config',
        );
      }
    };
    const ca = read(tls.ca, 'CA certificate');
    const cert = read(tls.cert, 'client certificate');
    const key = read(tls.key, 'client key');
    if ((cert === undefined) !== (key === undefined)) {
      throw new LinkError('link.tls needs both cert and key for a client certificate, or neither', 'config');
    }
    return {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      rejectUnauthorized: tls.rejectUnauthorized ?? true,
      ...(tls.servername === undefined ? {} : { servername: tls.servername }),
    };
  }

  private setState(state: LinkState, reason?: string): void {
    const previous = this.current;
    if (previous === state) return;
    this.current = state;
    const change: StateChange = {
      state,
      previous,
      connections: this.connections,
      ...(reason === undefined ? {} : { reason }),
    };
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'link state listener failed');
      }
    }
  }

  private withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer: TimerHandle = this.options.clock.setTimeout(
        () => reject(new LinkError(`no answer from the broker within ${ms} ms`, 'offline')),
        ms,
      );
      promise.then(
        (value) => {
          timer.cancel();
          resolve(value);
        },
        (err: unknown) => {
          timer.cancel();
          reject(err);
        },
      );
    });
  }
}
