import { redactUrl } from '../../cli/redact-url.js';

test('redactUrl hides the password and keeps what locates the broker', () => {
  expect(redactUrl('mqtt://bot:s3cret@broker.example:1883')).toBe('mqtt://bot:***@broker.example:1883');
  expect(redactUrl('wss://bot:s3cret@broker.example/mqtt')).toBe('wss://bot:***@broker.example/mqtt');
  expect(redactUrl('mqtts://broker.example:8883')).toBe('mqtts://broker.example:8883');
  expect(redactUrl('mqtt://user-only@127.0.0.1:1883')).toBe('mqtt://user-only@127.0.0.1:1883');
  expect(redactUrl('not a url with s3cret')).not.toContain('s3cret');
});
