// The console's root: holds the state, handles the keyboard (the only
// place), lays out header, tabs, the current view and the footer, and hands
// intents (fetch this page, reclaim, save, quit) to the command wiring.
import { Box, Text, useInput, useStdout } from 'ink';
import { useEffect, useReducer, useRef, useState } from 'react';
import { FindingsView } from './FindingsView.js';
import { Footer } from './Footer.js';
import { Header } from './Header.js';
import { HeapView } from './HeapView.js';
import { HelpView } from './HelpView.js';
import type { ConsoleInbox } from './inbox.js';
import { commandsFor, type Intent } from './keys.js';
import { type ConsoleState, displayed, earlierFrame, heapRows, initialState, listRows, reduce, taskQueryOf, viewRows } from './state.js';
import { TabBar } from './TabBar.js';
import { TasksView } from './TasksView.js';
import { ThreadsView } from './ThreadsView.js';

export interface TerminalSize {
  readonly columns: number;
  readonly rows: number;
}

export interface ConsoleProps {
  readonly source: 'live' | 'replay';
  readonly inbox: ConsoleInbox;
  readonly onIntent: (intent: Intent) => void;
  /** Fixed size (tests); by default the terminal's, following resizes. */
  readonly size?: TerminalSize;
}

/** The smallest screen the layout is made for. */
export const MIN_SIZE: TerminalSize = { columns: 80, rows: 24 };

function useTerminalSize(fixed: TerminalSize | undefined): TerminalSize {
  const { stdout } = useStdout();
  const read = (): TerminalSize => ({
    columns: Math.max(MIN_SIZE.columns, stdout.columns || MIN_SIZE.columns),
    rows: Math.max(MIN_SIZE.rows, stdout.rows || MIN_SIZE.rows),
  });
  const [size, setSize] = useState(read);
  useEffect(() => {
    if (fixed) return;
    const onResize = (): void => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout, fixed]);
  return fixed ?? size;
}

function Body({ state, width, height }: { readonly state: ConsoleState; readonly width: number; readonly height: number }) {
  const s = displayed(state);
  if (state.help) return <HelpView height={height} replay={state.source === 'replay'} />;
  if (!s)
    return (
      <Box height={height}>
        <Text dimColor>Waiting for the first snapshot…</Text>
      </Box>
    );
  switch (state.view) {
    case 'findings':
      return <FindingsView snapshot={s} cursor={state.findingsCursor} width={width} height={height} />;
    case 'tasks':
      return <TasksView state={state} snapshot={s} width={width} height={height} />;
    case 'threads':
      return <ThreadsView snapshot={s} earlier={earlierFrame(state)} cursor={state.threadsCursor} width={width} height={height} />;
    case 'heap':
      return <HeapView snapshot={s} reclaim={state.reclaim} cursor={state.heapCursor} rows={heapRows(state)} width={width} height={height} />;
  }
}

export function Console({ source, inbox, onIntent, size }: ConsoleProps) {
  const [state, dispatch] = useReducer(reduce, source, initialState);
  // Keys that arrive in one chunk are handled before React renders again:
  // each must see the state the keys before it left.
  const latest = useRef(state);
  latest.current = state;
  const terminal = useTerminalSize(size);
  const pageRows = listRows(terminal.rows);

  useEffect(() => inbox.subscribe(dispatch), [inbox]);

  const query = taskQueryOf(state.tasks, pageRows);
  const queryKey = JSON.stringify(query);
  useEffect(() => {
    if (source === 'live') onIntent({ type: 'query', query });
  }, [queryKey]);

  useInput((input, key) => {
    const command = commandsFor(input, key, latest.current, pageRows);
    for (const action of command.actions) {
      latest.current = reduce(latest.current, action);
      dispatch(action);
    }
    for (const intent of command.intents) onIntent(intent);
  });

  const s = displayed(state);
  const bodyHeight = viewRows(terminal.rows);
  return (
    <Box flexDirection="column" width={terminal.columns} height={terminal.rows - 1}>
      <Header snapshot={s} width={terminal.columns} />
      <TabBar state={state} snapshot={s} />
      <Body state={state} width={terminal.columns} height={bodyHeight} />
      <Footer state={state} snapshot={s} />
    </Box>
  );
}
