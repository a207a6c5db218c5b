import { type Server, STATUS_CODES } from 'node:http';
import type { Express } from 'express';
import { AppError, toProblem } from '../core/errors.ts';

/**
 * Listens with `app`, and answers what Node's HTTP parser refuses before express sees it
 * (headers over 16 KiB, malformed requests) as problem+json too, instead of a bare status.
 */
export function listen(app: Express, port: number, host: string): Server {
  const server = app.listen(port, host);
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const problem = toProblem(
      error.code === 'HPE_HEADER_OVERFLOW'
        ? new AppError('headers_too_large', 'The request line and headers together may not exceed 16 KiB.')
        : new AppError('bad_request', 'The request is not valid HTTP/1.1.'),
    );
    const body = JSON.stringify(problem);
    socket.end(
      [
        `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}`,
        'Content-Type: application/problem+json',
        `Content-Length: ${Buffer.byteLength(body)}`,
        'Connection: close',
        '',
        body,
      ].join('\r\n'),
    );
  });
  return server;
}
