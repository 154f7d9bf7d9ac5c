//! TypeScript (or JavaScript) to the JavaScript QuickJS runs, with oxc:
//! types stripped, a source map back to the original, and the module's
//! imports and exports read off so the module graph can be checked before
//! anything runs.

use std::path::Path;

use oxc::allocator::Allocator;
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::SourceType;
use oxc::transformer::{TransformOptions, Transformer};
use oxc_sourcemap::SourceMap;

/// A position in a source text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Position {
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The 1-based line and column of byte `offset` in `text`.
pub(crate) fn position(text: &str, offset: u32) -> Position {
    let offset = (offset as usize).min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() as u32 + 1;
    Position { line, column }
}

/// What a module imports by name, from where, and where it says so.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Import {
    pub specifier: String,
    /// `None` for a namespace import or a bare `import "x"`; `default` for
    /// a default import.
    pub name: Option<String>,
    pub at: Position,
}

/// A module ready for QuickJS.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Transpiled {
    pub code: String,
    /// Back to the original source (kept for project files only).
    #[serde(skip)]
    pub map: Option<SourceMap<'static>>,
    /// Every module the source requests (type-only imports left out), even
    /// those the type stripping drops because nothing uses them.
    pub requests: Vec<(String, Position)>,
    /// The names the source imports (type-only ones left out), with their
    /// positions.
    pub declared_imports: Vec<Import>,
    /// The value imports that remain once types are gone.
    pub imports: Vec<Import>,
    /// The names this module exports (`default` included): values, and
    /// types.
    pub exports: Vec<String>,
    pub type_exports: Vec<String>,
    /// Modules whose exports this one re-exports (`export * from`).
    pub star_exports: Vec<String>,
    /// Where the source exports each name (project files only).
    #[serde(skip, default)]
    pub export_at: Vec<(String, Position)>,
}

/// A syntax or transform error, at its place in the source.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub at: Position,
    pub message: String,
}

/// Strips types from `source` (named `path`, which says whether it is
/// TypeScript) and records its imports and exports.
pub(crate) fn transpile(source: &str, path: &Path) -> Result<Transpiled, SyntaxError> {
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(path)
        .unwrap_or_else(|_| SourceType::mjs())
        .with_module(true);
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if let Some(error) = parsed.diagnostics.into_iter().next() {
        return Err(diagnostic(source, error));
    }
    let original = shape(&parsed.module_record);
    let requests = parsed
        .module_record
        .requested_modules
        .iter()
        .filter(|(_, uses)| uses.iter().any(|u| !u.is_type))
        .map(|(specifier, uses)| (specifier.to_string(), position(source, uses[0].span.start)))
        .collect();
    let mut program = parsed.program;
    let semantic = SemanticBuilder::new().build(&program);
    if let Some(error) = semantic.diagnostics.into_iter().next() {
        return Err(diagnostic(source, error));
    }
    let scoping = semantic.semantic.into_scoping();
    let transformed =
        Transformer::new(&allocator, path, &TransformOptions::default()).build_with_scoping(scoping, &mut program);
    if let Some(error) = transformed.diagnostics.into_iter().next() {
        return Err(diagnostic(source, error));
    }
    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(path.to_owned()),
            ..CodegenOptions::default()
        })
        .build(&program);
    let map = generated.map.map(SourceMap::into_owned);
    // What remains once types are gone, placed where the source says it.
    let output_allocator = Allocator::default();
    let reparsed = Parser::new(&output_allocator, &generated.code, SourceType::mjs()).parse();
    if let Some(error) = reparsed.diagnostics.into_iter().next() {
        return Err(diagnostic(&generated.code, error));
    }
    let remaining = shape(&reparsed.module_record);
    let declared_imports = original
        .imports
        .iter()
        .map(|(specifier, name, offset)| Import {
            specifier: specifier.clone(),
            name: name.clone(),
            at: position(source, *offset),
        })
        .collect();
    let imports = remaining
        .imports
        .into_iter()
        .map(|(specifier, name, _)| {
            let offset = original
                .imports
                .iter()
                .find(|(s, n, _)| *s == specifier && *n == name)
                .or_else(|| original.imports.iter().find(|(s, _, _)| *s == specifier))
                .map_or(0, |(_, _, offset)| *offset);
            Import {
                specifier,
                name,
                at: position(source, offset),
            }
        })
        .collect();
    Ok(Transpiled {
        code: generated.code,
        map,
        requests,
        declared_imports,
        imports,
        exports: remaining.exports,
        type_exports: original.type_exports,
        star_exports: original.star_exports,
        export_at: original
            .export_at
            .into_iter()
            .map(|(name, offset)| (name, position(source, offset)))
            .collect(),
    })
}

/// What a module record says: imported `(specifier, name)` pairs (the
/// name `None` for a namespace or bare import), exported names, and the
/// modules re-exported whole.
struct Shape {
    imports: Vec<(String, Option<String>, u32)>,
    exports: Vec<String>,
    type_exports: Vec<String>,
    star_exports: Vec<String>,
    /// Exported names with the offset of their export statement.
    export_at: Vec<(String, u32)>,
}

fn shape(record: &oxc::syntax::module_record::ModuleRecord) -> Shape {
    use oxc::syntax::module_record::{ExportExportName, ExportImportName, ImportImportName};
    let mut imports: Vec<(String, Option<String>, u32)> = record
        .import_entries
        .iter()
        .filter(|entry| !entry.is_type)
        .map(|entry| {
            // Positions point at the imported name, else at the statement.
            let (name, at) = match &entry.import_name {
                ImportImportName::Name(name) => (Some(name.name.to_string()), name.span.start),
                ImportImportName::Default(span) => (Some("default".to_owned()), span.start),
                ImportImportName::NamespaceObject => (None, entry.statement_span.start),
            };
            (entry.module_request.name.to_string(), name, at)
        })
        .collect();
    let (mut exports, mut type_exports, mut export_at) = (Vec::new(), Vec::new(), Vec::new());
    for entry in record
        .local_export_entries
        .iter()
        .chain(record.indirect_export_entries.iter())
    {
        let names = if entry.is_type { &mut type_exports } else { &mut exports };
        let name = match &entry.export_name {
            ExportExportName::Name(name) => Some(name.name.to_string()),
            ExportExportName::Default(_) => Some("default".to_owned()),
            ExportExportName::Null => None,
        };
        if let Some(name) = name {
            export_at.push((name.clone(), entry.statement_span.start));
            names.push(name);
        }
        if entry.is_type {
            continue;
        }
        // `export { x } from "m"` imports `x` from `m`.
        if let (Some(request), ExportImportName::Name(name)) = (&entry.module_request, &entry.import_name) {
            imports.push((request.name.to_string(), Some(name.name.to_string()), name.span.start));
        }
    }
    let mut star_exports = Vec::new();
    for entry in record.star_export_entries.iter().filter(|e| !e.is_type) {
        match (&entry.export_name, &entry.module_request) {
            // `export * as ns from` exports one name; `export * from` all.
            (ExportExportName::Name(name), _) => exports.push(name.name.to_string()),
            (_, Some(request)) => star_exports.push(request.name.to_string()),
            _ => {}
        }
    }
    // Bare `import "m"` and re-exports request a module without an import
    // entry of their own.
    for (specifier, uses) in &record.requested_modules {
        if uses.iter().any(|u| !u.is_type) && !imports.iter().any(|(s, _, _)| s == specifier.as_str()) {
            imports.push((specifier.to_string(), None, uses[0].span.start));
        }
    }
    Shape {
        imports,
        exports,
        type_exports,
        star_exports,
        export_at,
    }
}

fn diagnostic(source: &str, error: oxc::diagnostics::OxcDiagnostic) -> SyntaxError {
    let offset = error.labels.first().map_or(0, |label| label.offset());
    SyntaxError {
        at: position(source, offset),
        message: error.message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_go_and_positions_come_back() {
        let source = "import type { Step } from \"@harmont/hm\";\nimport { sh, type Fork } from \"@harmont/hm\";\n\
                      import * as lib from \"./lib.ts\";\n\ninterface X { a: number }\n\
                      export const step: Step = sh(\"make\" as string);\nexport default { slug: \"ci\" };\n\
                      export * from \"./more.ts\";\n";
        let out = transpile(source, Path::new(".hm/pipeline.ts")).unwrap();
        assert!(
            !out.code.contains("interface") && !out.code.contains(": Step"),
            "{}",
            out.code
        );
        let mut requests: Vec<_> = out.requests.iter().map(|(s, _)| s.as_str()).collect();
        requests.sort();
        assert_eq!(requests, ["./lib.ts", "./more.ts", "@harmont/hm"]);
        let sh = out.imports.iter().find(|i| i.name.as_deref() == Some("sh")).unwrap();
        assert_eq!((sh.specifier.as_str(), sh.at.line), ("@harmont/hm", 2));
        assert!(out.imports.iter().all(|i| i.name.as_deref() != Some("Fork")));
        let mut exports = out.exports.clone();
        exports.sort();
        assert_eq!(exports, ["default", "step"]);
        assert_eq!(out.star_exports, ["./more.ts"]);
    }

    #[test]
    fn syntax_errors_have_their_place() {
        let err = transpile("const a = 1;\nconst b = ;\n", Path::new("x.ts")).unwrap_err();
        assert_eq!(err.at.line, 2, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(position("ab\ncé\nx", 6), Position { line: 2, column: 3 });
        assert_eq!(position("", 0), Position { line: 1, column: 1 });
    }
}
