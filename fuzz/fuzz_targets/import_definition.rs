//! A connector in Portico's own definition format.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_fuzz::check_import;
use portico_import::definition;

const NAME: &str = "connector.json";

fuzz_target!(|data: &[u8]| {
    check_import(definition::import_bytes(data, NAME), &[(NAME, data)]);
});
