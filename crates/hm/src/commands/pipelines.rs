use hm_exec::exit_codes;

use super::{load, print_json};
use crate::cli::ProjectArgs;
use crate::error::CliError;

/// `hm pipelines`: the envelope of every pipeline.
pub fn pipelines(project: &ProjectArgs) -> Result<i32, CliError> {
    let (_, loaded) = load(project)?;
    print_json(&loaded.envelope)?;
    // The process ends next: freeing every pipeline would only cost time.
    std::mem::forget(loaded);
    Ok(exit_codes::PASSED)
}

/// `hm render [SLUG]`: one pipeline's IR (the only one's without a slug).
pub fn render(slug: Option<&str>, project: &ProjectArgs) -> Result<i32, CliError> {
    let (_, loaded) = load(project)?;
    print_json(&select(&loaded, slug)?.definition)?;
    // The process ends next: freeing every pipeline would only cost time.
    std::mem::forget(loaded);
    Ok(exit_codes::PASSED)
}

/// The plan of `pipeline` (one of `loaded`'s, or made from one); an
/// invalid one is an error naming the file it came from.
pub fn plan_of(loaded: &hm_dsl::Loaded, pipeline: &hm_ir::Pipeline) -> Result<hm_ir::Plan, CliError> {
    hm_ir::Plan::new(pipeline).map_err(|source| {
        let at = loaded
            .pipeline(&pipeline.slug)
            .map(|(_, at)| at.clone())
            .unwrap_or_default();
        CliError::Load(hm_dsl::LoadError::Invalid {
            at,
            source: Box::new(source),
        })
    })
}

/// The pipeline named `slug`, or the only one.
pub fn select<'a>(loaded: &'a hm_dsl::Loaded, slug: Option<&str>) -> Result<&'a hm_ir::Pipeline, CliError> {
    let pipelines = &loaded.envelope.pipelines;
    let slugs = || pipelines.iter().map(|p| p.slug.clone()).collect::<Vec<_>>();
    match slug {
        Some(slug) => loaded.envelope.pipeline(slug).ok_or_else(|| CliError::UnknownPipeline {
            slug: slug.to_owned(),
            available: slugs(),
        }),
        None => match pipelines.as_slice() {
            [] => Err(CliError::NoPipelines),
            [only] => Ok(only),
            _ => Err(CliError::AmbiguousPipeline(slugs())),
        },
    }
}
