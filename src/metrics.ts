/**
 * `koa-user-context/metrics`: Prometheus metrics of a store (prom-client is an
 * optional peer dependency; the root entry never loads it).
 *
 * @module
 */
export * from './ops/metrics.js';
export * from './ops/usage-metrics.js';
