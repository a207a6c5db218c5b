import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../core/log.ts';

/** One plain-text message to one person. */
export interface Mail {
  to: string;
  subject: string;
  text: string;
}

/** The way out to e-mail: the one thing account flows need from a mail system. */
export interface Mailer {
  send(mail: Mail): Promise<void>;
}

/** A mailer that keeps what it sent, for a developer (or a test) to read. */
export interface OutboxMailer extends Mailer {
  /** Messages sent by this process, oldest first (the last OUTBOX_LIMIT). */
  readonly sent: readonly Mail[];
}

const OUTBOX_LIMIT = 100;

/**
 * The default mailer until a real mail transport exists: messages are kept in memory and,
 * with `dir`, written one `.eml` file each (mode 600: they carry sign-up links) so a developer
 * running `npm start` can follow the link. The log says only that a mail was written and
 * where; the text, which holds the link's token, never reaches a log line.
 */
export function makeOutboxMailer(options: { from: string; dir?: string; log: Logger }): OutboxMailer {
  const sent: Mail[] = [];
  return {
    sent,
    async send(mail) {
      sent.push(mail);
      if (sent.length > OUTBOX_LIMIT) sent.shift();
      if (!options.dir) {
        options.log.info('mail kept in the in-memory outbox', { subject: mail.subject });
        return;
      }
      await mkdir(options.dir, { recursive: true, mode: 0o700 });
      // Colons are not allowed in file names everywhere; the suffix keeps two mails in one ms apart.
      const stamp = new Date().toISOString().replaceAll(':', '-');
      const file = path.join(options.dir, `${stamp}-${randomBytes(3).toString('hex')}.eml`);
      const message = [
        `From: ${options.from}`,
        `To: ${mail.to}`,
        `Subject: ${mail.subject}`,
        `Date: ${new Date().toUTCString()}`,
        'Content-Type: text/plain; charset=utf-8',
        '',
        mail.text,
        '',
      ].join('\r\n');
      await writeFile(file, message, { mode: 0o600 });
      options.log.info('mail written to the dev outbox', { subject: mail.subject, file });
    },
  };
}
