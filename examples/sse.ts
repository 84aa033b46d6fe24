/**
 * Server-Sent Events for the example app: one frame, and a writer that waits
 * for the socket to drain (or the request to be aborted).
 */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { getRequestSignal } from '../src/index.js';

/** One SSE frame. */
export function sseFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Writes frames to `out`, waiting for it to drain; stops waiting when the request is aborted. */
export function sseSender(out: PassThrough): (event: string, data: unknown) => Promise<void> {
  return async (event, data) => {
    if (!out.write(sseFrame(event, data))) {
      const signal = getRequestSignal();
      await once(out, 'drain', signal !== undefined ? { signal } : {});
    }
  };
}
