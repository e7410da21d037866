// A view's frame: exactly `height` rows, content past them cut off. Ink
// boxes shrink their children to fit by default, which makes text lines
// overlap; the inner box keeps every line its own row and the outer one clips.
import { Box } from 'ink';
import type { ReactNode } from 'react';

export interface ClipProps {
  readonly height: number;
  readonly children: ReactNode;
}

export function Clip({ height, children }: ClipProps) {
  return (
    <Box flexDirection="column" height={height} overflow="hidden" flexShrink={0}>
      <Box flexDirection="column" flexShrink={0}>
        {children}
      </Box>
    </Box>
  );
}
