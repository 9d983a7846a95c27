/**
 * The technician's window into a running agent (both roles): one HTTP port with Prometheus metrics (/metrics), a
 * health check for systemd and monitoring (/healthz) and the JSON that `mgmc status` prints (/status).
 */
import { Type } from '@sinclair/typebox';
import { Section } from './schema-kit.js';

/** The port used when `metrics.port` is left out (the OpenTelemetry Prometheus exporter's default). */
export const DEFAULT_METRICS_PORT = 9464;

export const metricsSchema = Section(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Serve /metrics (Prometheus), /healthz and /status (for `mgmc status`) over HTTP.',
    }),
    host: Type.String({
      minLength: 1,
      maxLength: 253,
      default: '127.0.0.1',
      description:
        'Address to listen on. The endpoints have no authentication: keep loopback, or put a proxy with TLS in front.',
    }),
    // Optional rather than a schema default: a port written in the file must be free (the agent refuses to start),
    // while the default may be taken by another agent on the same host (a DSO and an MGMC side by side).
    port: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 65_535,
        description:
          `TCP port; ${DEFAULT_METRICS_PORT} when left out (if that one is taken the agent runs without the ` +
          'endpoints and logs an error). A port written here must be free, or the agent refuses to start. ' +
          '0 picks any free port (logged at start).',
      }),
    ),
  },
  { description: 'Metrics, health and status endpoints for technicians and monitoring.' },
);

export const metricsSections = {
  metrics: metricsSchema,
};
