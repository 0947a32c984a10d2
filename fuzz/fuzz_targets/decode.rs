//! Feeds arbitrary bytes to every decoder: server and client, text and binary, V1 and V2.
//!
//! No decoder may panic. A message that decodes must, when it encodes again in the same
//! direction, decode to the same message (V1 server frames drop a stray `join_ref`, which V1
//! servers never send). Messages the format cannot express are encode errors, never panics.
#![no_main]

use actix_slipstream::codec::Message;
use actix_slipstream::codec::{Serializer, V1Json, V2};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fn server_again(ser: &dyn Serializer, msg: &Message) {
    if let Ok(frame) = ser.encode_server(msg) {
        let again = ser
            .decode_server(&frame)
            .expect("re-encoded server frame decodes");
        let mut expected = msg.clone();
        if ser.vsn() == V1Json.vsn() {
            expected.join_ref = None;
        }
        assert_eq!(again, expected, "{frame:?}");
    }
}

fn client_again(ser: &dyn Serializer, msg: &Message) {
    if let Ok(frame) = ser.encode_client(msg) {
        let again: Message = ser
            .decode_client(&frame)
            .expect("re-encoded client frame decodes");
        assert_eq!(&again, msg, "{frame:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    for ser in [&V1Json as &dyn Serializer, &V2] {
        if let Ok(msg) = ser.decode_server_text(data) {
            server_again(ser, &msg);
        }
        if let Ok(msg) = ser.decode_client_text(data) {
            client_again(ser, &msg);
        }
        if let Ok(msg) = ser.decode_server_binary(&bytes) {
            server_again(ser, &msg);
        }
        if let Ok(msg) = ser.decode_client_binary(&bytes) {
            client_again(ser, &msg);
        }
    }
});
