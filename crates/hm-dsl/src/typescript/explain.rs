//! Saying what a failed call was. QuickJS reports `TypeError: not a
//! function` or `cannot read property 'x' of undefined` with a place but
//! no name; the expression at that place in the user's source names it.

use oxc::allocator::Allocator;
use oxc::ast::ast::{CallExpression, NewExpression, StaticMemberExpression};
use oxc::ast_visit::{walk, Visit};
use oxc::parser::Parser;
use oxc::span::{GetSpan, SourceType, Span};
use std::path::Path;

/// The innermost call and member expressions around a byte offset.
struct Finder {
    offset: u32,
    /// The callee of the innermost call (or `new`) around the offset.
    callee: Option<Span>,
    call: Option<Span>,
    /// The property read that failed, when the message names it.
    property: Option<String>,
    /// The object of the innermost `a.b` around the offset reading that property.
    object: Option<Span>,
    member: Option<Span>,
}

fn contains(span: Span, offset: u32) -> bool {
    span.start <= offset && offset < span.end
}

fn inner(current: Option<Span>, candidate: Span) -> bool {
    current.is_none_or(|c| candidate.size() <= c.size())
}

impl<'a> Visit<'a> for Finder {
    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if contains(it.span, self.offset) && inner(self.call, it.span) {
            self.call = Some(it.span);
            self.callee = Some(it.callee.span());
        }
        walk::walk_call_expression(self, it);
    }

    fn visit_new_expression(&mut self, it: &NewExpression<'a>) {
        if contains(it.span, self.offset) && inner(self.call, it.span) {
            self.call = Some(it.span);
            self.callee = Some(it.callee.span());
        }
        walk::walk_new_expression(self, it);
    }

    fn visit_static_member_expression(&mut self, it: &StaticMemberExpression<'a>) {
        let named = self.property.as_deref().is_none_or(|p| p == it.property.name.as_str());
        if named && contains(it.span, self.offset) && inner(self.member, it.span) {
            self.member = Some(it.span);
            self.object = Some(it.object.span());
        }
        walk::walk_static_member_expression(self, it);
    }
}

/// The byte offset of 1-based `line` and `column` (in characters) in `text`.
fn offset(text: &str, line: u32, column: u32) -> Option<u32> {
    let start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line as usize - 2)?.0 + 1
    };
    let rest = &text[start..];
    let within = rest
        .char_indices()
        .nth(column.saturating_sub(1) as usize)
        .map_or(rest.len(), |(i, _)| i);
    u32::try_from(start + within).ok()
}

/// `summary` (`TypeError: ...`) with the expression it is about, when the
/// source of `file` at `line`:`column` shows it; `None` when there is
/// nothing to add.
pub(crate) fn explain(summary: &str, source: &str, file: &Path, line: u32, column: u32) -> Option<String> {
    let not_a_function = summary == "TypeError: not a function";
    let of_nothing = summary.starts_with("TypeError: cannot read property ")
        && (summary.ends_with(" of undefined") || summary.ends_with(" of null"));
    if !not_a_function && !of_nothing {
        return None;
    }
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(file).unwrap_or_else(|_| SourceType::mjs());
    let parsed = Parser::new(&allocator, source, source_type.with_module(true)).parse();
    let property = summary
        .strip_prefix("TypeError: cannot read property '")
        .and_then(|rest| rest.split_once('\''))
        .map(|(name, _)| name.to_owned());
    let mut finder = Finder {
        offset: offset(source, line, column)?,
        callee: None,
        call: None,
        property,
        object: None,
        member: None,
    };
    finder.visit_program(&parsed.program);
    let text = |span: Span| -> String {
        let text = span.source_text(source);
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > 60 {
            format!("{}...", text.chars().take(57).collect::<String>())
        } else {
            text
        }
    };
    if not_a_function {
        let callee = finder.callee?;
        return Some(format!("TypeError: `{}` is not a function", text(callee)));
    }
    let object = finder.object?;
    let nothing = if summary.ends_with("undefined") {
        "undefined"
    } else {
        "null"
    };
    Some(format!("{summary} (`{}` is {nothing})", text(object)))
}

/// The innermost calls of a function named `name` (`name(...)` or
/// `x.name(...)`) around a byte offset.
struct CallOf<'n> {
    name: &'n str,
    offset: u32,
    call: Option<Span>,
}

impl<'a> Visit<'a> for CallOf<'_> {
    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        let callee = match &it.callee {
            oxc::ast::ast::Expression::Identifier(id) => Some(id.name.as_str()),
            oxc::ast::ast::Expression::StaticMemberExpression(member) => Some(member.property.name.as_str()),
            _ => None,
        };
        if callee == Some(self.name) && contains(it.span, self.offset) && inner(self.call, it.span) {
            self.call = Some(it.span);
        }
        walk::walk_call_expression(self, it);
    }
}

/// Where the call of `name` around 1-based `line` and `column` of `source`
/// starts. QuickJS places a call at its end, which the source map takes to
/// the last argument; a pipeline is better shown where `pipeline(` is.
pub(crate) fn call_start(source: &str, file: &Path, name: &str, line: u32, column: u32) -> Option<(u32, u32)> {
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(file).unwrap_or_else(|_| SourceType::mjs());
    let parsed = Parser::new(&allocator, source, source_type.with_module(true)).parse();
    let mut finder = CallOf {
        name,
        offset: offset(source, line, column)?,
        call: None,
    };
    finder.visit_program(&parsed.program);
    let start = finder.call?.start as usize;
    let before = source.get(..start)?;
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or(before).chars().count() + 1;
    Some((u32::try_from(line).ok()?, u32::try_from(column).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_is_placed_where_its_call_starts() {
        let source = "import { pipeline, sh } from \"@harmont/hm\";\nexport default {\n  slug: \"ci\",\n  pipeline: pipeline(\n    [sh(\"a\"), sh(\"b\")],\n    { env: {} },\n  ),\n};\n";
        // QuickJS's place for the call, mapped: inside its last argument.
        assert_eq!(call_start(source, Path::new("p.ts"), "pipeline", 6, 13), Some((4, 13)));
        assert_eq!(call_start(source, Path::new("p.ts"), "pipeline", 5, 16), Some((4, 13)));
        let member = "const ir = hm.pipeline([x]);\n";
        assert_eq!(call_start(member, Path::new("p.ts"), "pipeline", 1, 25), Some((1, 12)));
        assert_eq!(call_start("const x = 1;\n", Path::new("p.ts"), "pipeline", 1, 5), None);
    }

    #[test]
    fn a_call_of_something_else_names_the_callee() {
        let source = "import { go } from \"@harmont/hm\";\n\nconst x = 1;\nconst project = go({ path: \".\" });\n";
        let said = explain("TypeError: not a function", source, Path::new("p.ts"), 4, 17);
        assert_eq!(said.as_deref(), Some("TypeError: `go` is not a function"));
        // QuickJS points at the method's name.
        let source = "const p = js.project({ path: \".\" }).runs(\"x\");\n";
        let said = explain("TypeError: not a function", source, Path::new("p.ts"), 1, 37);
        assert_eq!(
            said.as_deref(),
            Some("TypeError: `js.project({ path: \".\" }).runs` is not a function")
        );
    }

    #[test]
    fn reading_a_property_of_nothing_names_the_object() {
        let source = "const step = project.build();\n";
        let said = explain(
            "TypeError: cannot read property 'build' of undefined",
            source,
            Path::new("p.ts"),
            1,
            14,
        );
        assert_eq!(
            said.as_deref(),
            Some("TypeError: cannot read property 'build' of undefined (`project` is undefined)")
        );
        // QuickJS points at the start of the chain; the message names the property.
        let source = "const step = steps.build.sh(\"x\");\n";
        let said = explain(
            "TypeError: cannot read property 'sh' of undefined",
            source,
            Path::new("p.ts"),
            1,
            14,
        );
        assert_eq!(
            said.as_deref(),
            Some("TypeError: cannot read property 'sh' of undefined (`steps.build` is undefined)")
        );
        assert_eq!(explain("Error: boom", source, Path::new("p.ts"), 1, 1), None);
    }
}
