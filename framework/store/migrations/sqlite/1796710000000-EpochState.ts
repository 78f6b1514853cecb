import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A group's MLS state in two parts (issue #12): "state" keeps the part every message changes and the
 * new "epoch_state" the part that changes only with the epoch, written only then. Rows written
 * before have no epoch_state and their "state" is the whole state, which still reads
 * (mls.decodeStoredSession); the next write of such a group stores both parts.
 */
export class EpochState1796710000000 implements MigrationInterface {
  name = 'EpochState1796710000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "conversations" ADD COLUMN "epoch_state" blob`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "conversations" DROP COLUMN "epoch_state"`);
  }
}
