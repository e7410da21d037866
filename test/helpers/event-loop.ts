// The ground truth fixtures/event_loop.c prints when its scripted traffic is over.
export interface EventLoopTruth {
  pid: number;
  connections: number;
  requests_per_connection: number;
  sites: Record<'leak' | 'heartbeat' | 'request' | 'connection' | 'accept' | 'blocker' | 'lost' | 'handshake', string>;
  leaked_tasks: number;
  leak_live_bytes: number;
  request_allocated_bytes: number;
  connection_allocated_bytes: number;
  handshake_allocated_bytes: number;
  requests_completed: number;
  lost_tasks: number;
  blocker_poll_ms: number;
  agent: boolean;
}
