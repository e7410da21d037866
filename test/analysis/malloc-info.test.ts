import test from 'ava';
import { parseMallocInfo } from '../../src/model/malloc-info.js';

// As glibc 2.36 prints it for a process with two arenas.
const XML = `<malloc version="1">
<heap nr="0">
<sizes>
  <size from="33" to="48" total="96" count="2"/>
  <unsorted from="1025" to="1025" total="1025" count="1"/>
</sizes>
<total type="fast" count="2" size="96"/>
<total type="rest" count="3" size="135000"/>
<system type="current" size="270336"/>
<system type="max" size="270336"/>
<aspace type="total" size="270336"/>
<aspace type="mprotect" size="270336"/>
</heap>
<heap nr="1">
<sizes>
</sizes>
<total type="fast" count="0" size="0"/>
<total type="rest" count="1" size="52000000"/>
<system type="current" size="53000000"/>
<system type="max" size="60000000"/>
<aspace type="total" size="53000000"/>
<aspace type="mprotect" size="53000000"/>
<aspace type="subheaps" size="1"/>
</heap>
<total type="fast" count="2" size="96"/>
<total type="rest" count="4" size="52135000"/>
<total type="mmap" count="3" size="4202496"/>
<system type="current" size="53270336"/>
<system type="max" size="60270336"/>
<aspace type="total" size="53270336"/>
<aspace type="mprotect" size="53270336"/>
</malloc>
`;

test('reads each arena and the mmapped total', (t) => {
  t.deepEqual(parseMallocInfo(XML), {
    arenas: [
      { index: 0, fast_free_bytes: 96, rest_free_bytes: 135000, system_bytes: 270336, max_system_bytes: 270336 },
      { index: 1, fast_free_bytes: 0, rest_free_bytes: 52000000, system_bytes: 53000000, max_system_bytes: 60000000 },
    ],
    mmap_bytes: 4202496,
  });
});

test('null for anything that is not malloc_info output', (t) => {
  t.is(parseMallocInfo(''), null);
  t.is(parseMallocInfo('<html/>'), null);
});
