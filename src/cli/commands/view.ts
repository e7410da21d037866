// leakscope view: replays a watch recording (or one snapshot file) in the console.
import { readRecording } from '../../model/recording.js';
import { ConsoleInbox } from '../../../tui/inbox.js';
import { requireTerminal, runConsole } from '../console-app.js';

export async function viewCommand(path: string, options: { readonly saveDir: string }): Promise<number> {
  const recording = await readRecording(path);
  requireTerminal('leakscope view');
  const inbox = new ConsoleInbox();
  inbox.push({ type: 'recording', snapshots: recording.snapshots });
  await runConsole('replay', inbox, { saveDir: options.saveDir });
  return 0;
}
