//! An OpenAPI 3 document, read as JSON or YAML: the first byte chooses the file name, and so
//! the syntax (`.json`, `.yaml`, or no extension: a leading `{` decides).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_fuzz::check_import;
use portico_import::openapi;

const NAMES: [&str; 3] = ["openapi.json", "openapi.yaml", "openapi"];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, document)) = data.split_first() else { return };
    let name = NAMES[usize::from(choice) % NAMES.len()];
    check_import(openapi::import_bytes(document, name), &[(name, document)]);
});
