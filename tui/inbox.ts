// How the command wiring hands the console what arrives from outside
// (snapshots, connection changes, reclaim results): pushed actions, kept
// until the console subscribes so that nothing before the first render is lost.
import type { Action } from './state.js';

export type InboxAction = Extract<Action, { type: 'snapshot' | 'recording' | 'connection' | 'reclaim' | 'notice' }>;

export class ConsoleInbox {
  private waiting: InboxAction[] = [];
  private listener: ((action: InboxAction) => void) | null = null;

  push(action: InboxAction): void {
    if (this.listener) this.listener(action);
    else this.waiting.push(action);
  }

  subscribe(listener: (action: InboxAction) => void): () => void {
    this.listener = listener;
    const waiting = this.waiting;
    this.waiting = [];
    for (const action of waiting) listener(action);
    return () => {
      if (this.listener === listener) this.listener = null;
    };
  }
}
