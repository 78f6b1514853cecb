/**
 * URLs as the CLI prints them: broker and database URLs may carry credentials
 * (mqtt://user:password@host), and what the CLI prints ends up in terminals, logs and bug reports.
 */

/** The URL with its password replaced by `***`; a string that does not parse is returned masked. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not a URL we can take apart: say nothing about what might be a secret.
    return '<unparseable URL>';
  }
  if (u.password) u.password = '***';
  return u.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
}
