//! Environment text (`env.txt`) and the stored environment: parse -> emit -> parse keeps every
//! variable; `envstore::encode` then `decode` gives the same variables and sequence number.
#![no_main]

use kexboot_boot::env::Env;
use kexboot_boot::envstore::{decode, encode, Error, COPY_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (env, _notes) = Env::parse(text);
    let mut out = String::new();
    for (n, v) in env.iter_sorted() {
        out.push_str(&format!("{n}={v}\n"));
    }
    let (again, notes) = Env::parse(&out);
    assert!(notes.is_empty(), "emitted text has bad lines: {notes:?}");
    assert_eq!(
        again.iter_sorted(),
        env.iter_sorted(),
        "text round trip changed variables"
    );
    let seq = data.first().copied().unwrap_or(0);
    match encode(&env, seq, COPY_SIZE) {
        Ok(copy) => {
            assert_eq!(copy.len(), COPY_SIZE);
            let (back, s) = decode(&copy).expect("an encoded copy is refused");
            assert_eq!(s, seq);
            assert_eq!(
                back.iter_sorted(),
                env.iter_sorted(),
                "store round trip changed variables"
            );
        }
        Err(Error::TooBig { .. } | Error::NulInValue { .. } | Error::BadName { .. }) => {}
        Err(e) => panic!("unexpected encode error {e}"),
    }
});
