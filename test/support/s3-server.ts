/**
 * A real S3-compatible server for tests: s3rver (from npm) on 127.0.0.1, on a free port, keeping
 * its objects in a temp directory. It speaks the S3 REST API (PUT/GET/DELETE object, path style).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

export interface TestS3 {
  readonly endpoint: string;
  readonly bucket: string;
  /** s3rver's fixed credentials. */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  close(): Promise<void>;
}

export async function startTestS3(bucket = 'relay-blobs'): Promise<TestS3> {
  const directory = mkdtempSync(join(tmpdir(), 'relay-s3-'));
  const server = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    close: async () => {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
