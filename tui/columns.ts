// Fitting table columns to the terminal: fixed columns keep their width,
// one flexible column takes the room that is left.
import { padColumn } from '../src/format.js';

export interface Column {
  readonly title: string;
  readonly width: number;
  /** Takes the room the fixed columns leave (at least `width`). */
  readonly flex?: boolean;
  readonly align?: 'left' | 'right';
}

export function fitColumns<C extends Column>(columns: readonly C[], totalWidth: number): readonly C[] {
  const least = columns.reduce((sum, c) => sum + c.width, 0);
  const flexible = columns.filter((c) => c.flex).length;
  if (flexible === 0) return columns;
  const extra = Math.floor(Math.max(0, totalWidth - least) / flexible);
  return columns.map((c) => (c.flex ? { ...c, width: c.width + extra } : c));
}

function cell(text: string, column: Column): string {
  if (column.align !== 'right') return padColumn(text, column.width);
  const room = column.width - 1;
  const cut = text.length > room ? text.slice(0, room) : text;
  return `${' '.repeat(room - cut.length)}${cut} `;
}

/** A table's columns at this width: those marked `wide` only from `wideFrom` columns on, then fitted. */
export function columnsFor<C extends Column & { readonly wide?: boolean }>(columns: readonly C[], width: number, wideFrom: number): readonly C[] {
  return fitColumns(
    columns.filter((c) => !c.wide || width >= wideFrom),
    width,
  );
}

export function tableRow(cells: readonly string[], columns: readonly Column[]): string {
  return columns.map((column, i) => cell(cells[i] ?? '', column)).join('').trimEnd();
}

export function tableHeader(columns: readonly Column[]): string {
  return tableRow(
    columns.map((c) => c.title),
    columns,
  );
}
