// Console tests must see the colours a terminal would: Ink colours through
// chalk, which turns colour off when stdout is not a terminal.
import chalk from 'chalk';

chalk.level = 1;
