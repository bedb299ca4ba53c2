import type { Generated } from "kysely";

/** The tables as Kysely sees them; `db/migrations/` is where they are defined. */
export interface Database {
  students: { id: Generated<number>; name: string };
  results: { student: number; exam: number; score: number };
  exam_totals: { exam: number; writer: number; count: number; sum: number };
  ingest_checkpoint: { feed: string; last_event_id: string; updated_at: Generated<Date> };
  ingest_leader: {
    feed: string;
    epoch: number;
    holder: string;
    since: Date;
    expires_at: Date;
    locked: boolean;
  };
  quarantine: {
    id: Generated<string>;
    received_at: Generated<Date>;
    event_id: string | null;
    reason: string;
    raw: string;
  };
}
