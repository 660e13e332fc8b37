//! A Power Platform connector from two files: `apiProperties.json`, then four zero bytes, then
//! `apiDefinition.swagger.json` (the whole input is the properties when there is no separator).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_fuzz::check_import;
use portico_import::power_platform;

const SEPARATOR: &[u8] = b"\0\0\0\0";
const PROPERTIES: &str = "apiProperties.json";
const DEFINITION: &str = "apiDefinition.swagger.json";

fuzz_target!(|data: &[u8]| {
    let (properties, definition) = match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(at) => (&data[..at], &data[at + SEPARATOR.len()..]),
        None => (data, &[][..]),
    };
    let import = power_platform::import_bytes(properties, PROPERTIES, definition, DEFINITION);
    check_import(import, &[(PROPERTIES, properties), (DEFINITION, definition)]);
});
