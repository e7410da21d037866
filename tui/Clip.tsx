// A view's frame: exactly `height` rows, content past them cut off. Ink
// boxes shrink their children to fit by default, which makes text lines
// overlap; the inner box keeps every line its own row and the outer one cuts
// off rows. Only rows: lines are cut to the width where they are made, and
// clipping columns too would cost Ink a slice of every line on every frame.
import { Box } from 'ink';
import type { ReactNode } from 'react';

export interface ClipProps {
  readonly height: number;
  readonly children: ReactNode;
}

export function Clip({ height, children }: ClipProps) {
  return (
    <Box flexDirection="column" height={height} overflowY="hidden" flexShrink={0}>
      <Box flexDirection="column" flexShrink={0}>
        {children}
      </Box>
    </Box>
  );
}
