// How the task tests (C runtime and Tokio) read a snapshot's sites and findings.
import type { Snapshot, TaskSite } from '../../src/model/snapshot.js';

export const siteOf = (s: Snapshot, site: string): TaskSite | undefined => s.tasks.sites.find((x) => x.site === site);

/** [subject label, value] of each finding with this id. */
export const findingsAt = (s: Snapshot, id: string) => s.findings.filter((f) => f.id === id).map((f) => [f.subject.label, f.value]);
