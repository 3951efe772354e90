//! The browser demo's tokenizer: one id per UTF-8 byte (0..=255) and `<|endoftext|>` at 256.
//! It needs no training and no `tokenizers` crate, so it runs anywhere; [`tokenizer_json`]
//! describes the same mapping as a Hugging Face `tokenizer.json` (byte-level BPE without
//! merges), which is what lets `wgtrain eval` and `wgtrain generate` read the demo's
//! checkpoints.

/// The end-of-text id (pico's `<|endoftext|>`), after the 256 byte ids.
pub const EOS_ID: u32 = 256;
/// Ids in use: 256 bytes and end-of-text.
pub const VOCAB: usize = 257;
const EOS: &str = "<|endoftext|>";

/// The ids of `text`: its UTF-8 bytes.
pub fn encode(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

/// The text of `ids`: byte ids are joined and read as UTF-8 (invalid sequences become U+FFFD);
/// end-of-text becomes a line break, other ids (the model's padding) are dropped.
pub fn decode(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids
        .iter()
        .filter_map(|&i| match i {
            0..=255 => Some(i as u8),
            EOS_ID => Some(b'\n'),
            _ => None,
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the others are
/// moved to U+0100 and up in order. Hugging Face byte-level tokenizers spell bytes this way.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let shifted = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + shifted).expect("below U+0200")
}

/// This tokenizer as a Hugging Face `tokenizer.json`.
pub fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    for b in 0..=255u8 {
        vocab.insert(byte_char(b).to_string(), serde_json::json!(b));
    }
    vocab.insert(EOS.into(), serde_json::json!(EOS_ID));
    let byte_level = serde_json::json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false
    });
    let doc = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{
            "id": EOS_ID, "content": EOS, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }],
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": null,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": []
        }
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON always serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_alphabet() {
        let text = "héllo, wörld ✓\n\t";
        assert_eq!(decode(&encode(text)), text);
        assert_eq!(decode(&[104, EOS_ID, 105, 300]), "h\ni");
        let chars: std::collections::HashSet<char> = (0..=255u8).map(byte_char).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!(byte_char(b'a'), 'a');
        assert_eq!(byte_char(b' '), '\u{120}'); // GPT-2's 'Ġ'
        assert_eq!(byte_char(0), '\u{100}');
    }

    /// The JSON form gives the same ids through the `tokenizers` crate the CLI uses.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn hugging_face_form_agrees() {
        let tok =
            crate::train::tokenizer::Tokenizer::from_bytes(tokenizer_json().as_bytes()).unwrap();
        let text = "Once upon a time, naïve  bytes: \u{0}\u{7f} ✓ end.\n";
        assert_eq!(tok.encode(text).unwrap(), encode(text));
        assert_eq!(tok.decode(&encode(text)).unwrap(), text);
        assert_eq!(tok.eos_id(), Some(EOS_ID));
        assert_eq!(tok.vocab_size(), VOCAB);
        assert_eq!(tok.encode("a<|endoftext|>b").unwrap(), vec![97, EOS_ID, 98]);
    }
}
