//! HTML pasted as an article: a check that says so, and a stripper for `--html` that keeps the
//! text a reader sees, one paragraph per block element.
//!
//! This is not a browser's parser: it only needs to turn an article's markup into paragraphs.
//! Tags are removed, the contents of elements that are never shown as text (scripts, styles)
//! are dropped, block elements become paragraph breaks, white space is collapsed as a browser
//! does, and character references are decoded after the tags are gone, so `&lt;p&gt;` stays
//! text.

/// Elements whose content is never article text.
const HIDDEN: [&str; 7] = [
    "script", "style", "noscript", "template", "svg", "head", "iframe",
];

/// Elements that start a new paragraph.
const BLOCKS: [&str; 26] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "section",
    "table",
    "tr",
];

/// Tags whose presence makes text look like HTML (common in pasted pages, rare in prose).
const TELLTALE: [&str; 12] = [
    "p", "div", "br", "span", "a", "html", "body", "script", "li", "h1", "h2", "img",
];

/// Does `text` look like HTML markup? At least two tags of common HTML elements.
pub fn looks_like_html(text: &str) -> bool {
    let mut found = 0;
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let name = tag_name(rest.strip_prefix('/').unwrap_or(rest));
        if TELLTALE.contains(&name.as_str()) {
            found += 1;
            if found >= 2 {
                return true;
            }
        }
    }
    false
}

/// The lower-cased element name at the start of `s` (after `<` or `</`); empty if none.
fn tag_name(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The article text of an HTML document or fragment: one paragraph per line, separated by
/// blank lines.
pub fn to_text(html: &str) -> String {
    // Block boundaries and `<br>` are marked with the Unicode paragraph and line separators
    // until the source's own white space is collapsed.
    const BREAK: char = '\u{2029}';
    const LINE: char = '\u{2028}';
    let starts_tag = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(comment) = after.strip_prefix("!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let closing = after.strip_prefix('/');
        let is_markup =
            starts_tag(after) || closing.is_some_and(starts_tag) || after.starts_with(['!', '?']);
        if !is_markup {
            // A `<` that opens no tag ("a < b") is text.
            out.push('<');
            rest = after;
            continue;
        }
        let name = tag_name(closing.unwrap_or(after));
        rest = &after[tag_end(after)..];
        if closing.is_none() && HIDDEN.contains(&name.as_str()) {
            rest = skip_element(rest, &name);
        }
        if name == "br" {
            out.push(LINE);
        } else if name == "td" || name == "th" {
            out.push(' ');
        } else if BLOCKS.contains(&name.as_str()) {
            out.push(BREAK);
        }
    }
    out.push_str(rest);
    let mut paragraphs = Vec::new();
    for line in out.split([BREAK, LINE]) {
        let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        // References are decoded last, so that `&lt;p&gt;` is text, not a tag.
        let text = decode_entities(&collapsed);
        paragraphs.extend(
            text.split('\n')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    let mut text = paragraphs.join("\n\n");
    text.push('\n');
    text
}

/// The length of a tag's inside up to and including its `>`, quotes respected; all of `s` if
/// the tag never ends.
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// What follows the closing tag of `name` (case-insensitive); nothing if it is never closed.
fn skip_element<'a>(s: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = s.to_ascii_lowercase();
    match lower.find(&closing) {
        Some(at) => {
            let after = &s[at + closing.len()..];
            &after[tag_end(after)..]
        }
        None => "",
    }
}

/// Named references common in French news pages; others are kept as written.
const ENTITIES: [(&str, &str); 46] = [
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("nbsp", "\u{a0}"),
    ("laquo", "«"),
    ("raquo", "»"),
    ("lsquo", "‘"),
    ("rsquo", "’"),
    ("ldquo", "“"),
    ("rdquo", "”"),
    ("hellip", "…"),
    ("ndash", "–"),
    ("mdash", "—"),
    ("euro", "€"),
    ("deg", "°"),
    ("copy", "©"),
    ("eacute", "é"),
    ("Eacute", "É"),
    ("egrave", "è"),
    ("Egrave", "È"),
    ("ecirc", "ê"),
    ("Ecirc", "Ê"),
    ("euml", "ë"),
    ("agrave", "à"),
    ("Agrave", "À"),
    ("acirc", "â"),
    ("Acirc", "Â"),
    ("auml", "ä"),
    ("ccedil", "ç"),
    ("Ccedil", "Ç"),
    ("icirc", "î"),
    ("Icirc", "Î"),
    ("iuml", "ï"),
    ("ocirc", "ô"),
    ("Ocirc", "Ô"),
    ("ouml", "ö"),
    ("ugrave", "ù"),
    ("Ugrave", "Ù"),
    ("ucirc", "û"),
    ("Ucirc", "Û"),
    ("uuml", "ü"),
    ("oelig", "œ"),
    ("OElig", "Œ"),
    ("shy", ""),
];

/// Decodes `&name;`, `&#NNN;` and `&#xHHH;`; a reference that is not understood stays as it is.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let decoded = after
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| reference(&after[..end]).map(|c| (c, end)));
        match decoded {
            Some((text, end)) => {
                out.push_str(&text);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn reference(name: &str) -> Option<String> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        // NUL and surrogates are not characters a page can mean.
        return char::from_u32(code)
            .filter(|&c| c != '\0')
            .map(String::from);
    }
    ENTITIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_paragraphs_and_hidden_content_goes() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head><body>\
            <script>var x = '<p>no</p>';</script><h1>Le  sommet</h1>\n<p>Premier\n \
            paragraphe &laquo;&nbsp;cit&eacute;&nbsp;&raquo; &amp; <a href=\"/x?a=1&b=2\">lien</a>.</p>\
            <!-- <p>comment</p> --><div>Deux<br>lignes</div><p>3 &lt; 4 &#233;t&#xE9; &bogus; a < b</p>\
            </body></html>";
        assert_eq!(
            to_text(html),
            "Le sommet\n\nPremier paragraphe «\u{a0}cité\u{a0}» & lien.\n\nDeux\n\nlignes\n\n\
             3 < 4 été &bogus; a < b\n"
        );
    }

    #[test]
    fn unclosed_and_odd_markup_loses_no_text_and_never_panics() {
        assert_eq!(to_text("<p>Fin sans balise"), "Fin sans balise\n");
        assert_eq!(to_text("<script>jamais fermé"), "\n");
        assert_eq!(to_text("<p title='a>b'>x</p>"), "x\n");
        assert_eq!(
            decode_entities("&#0; &#xD800; &#99999999; &"),
            "&#0; &#xD800; &#99999999; &"
        );
    }

    #[test]
    fn telltale_tags_make_html_and_prose_is_not() {
        assert!(looks_like_html("<p>Un</p>\n<p>Deux</p>"));
        assert!(looks_like_html("<DIV class=x>Un <BR> deux</DIV>"));
        assert!(!looks_like_html("Si a < b et b > c, alors a < c."));
        assert!(!looks_like_html("Le mot <p> seul."));
    }
}
