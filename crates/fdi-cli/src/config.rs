//! Where the server is and which token to send: flags, then environment (`FDI_SERVER`,
//! `FDI_TOKEN`, ...), then the config file (`--config`, `$FDI_CONFIG`, else
//! `~/.config/fdi/cli.toml`), then the defaults of the server's own examples.

use std::path::{Path, PathBuf};

use clap::Args;
use fdi_client::ClientConfig;
use serde::Deserialize;

use crate::CliError;
use crate::output::Output;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
pub const DEFAULT_PROJECT: &str = "demo";
pub const DEFAULT_INSTANCE: &str = "local";

/// Connection and output options, accepted before or after the subcommand.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Server address [default: the config file's `server`, else http://127.0.0.1:8080].
    #[arg(long, env = "FDI_SERVER", global = true)]
    pub server: Option<String>,
    /// API token (X-Auth-Token) [default: the config file's `token`].
    #[arg(long, env = "FDI_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Project id [default: the config file's `project_id`, else `demo`].
    #[arg(long, env = "FDI_PROJECT_ID", global = true)]
    pub project: Option<String>,
    /// Instance id [default: the config file's `instance_id`, else `local`].
    #[arg(long, env = "FDI_INSTANCE_ID", global = true)]
    pub instance: Option<String>,
    /// Config file (TOML: server, token, project_id, instance_id)
    /// [default: ~/.config/fdi/cli.toml when it exists].
    #[arg(long, env = "FDI_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// `text` for people, `json` for scripts: one JSON document on stdout and nothing else.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
}

/// The config file's keys; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub server: Option<String>,
    pub token: Option<String>,
    pub project_id: Option<String>,
    pub instance_id: Option<String>,
}

impl ConnArgs {
    /// The client's settings: each from the flag or its variable, else the file, else the default.
    pub fn client_config(&self) -> Result<ClientConfig, CliError> {
        let file = self.config_file()?;
        let token = first(&self.token, &file.token).ok_or_else(|| {
            CliError::Usage(
                "no API token: give --token, set FDI_TOKEN or put `token = \"...\"` in the config file"
                    .into(),
            )
        })?;
        let server = first(&self.server, &file.server).unwrap_or_else(|| DEFAULT_SERVER.into());
        let project =
            first(&self.project, &file.project_id).unwrap_or_else(|| DEFAULT_PROJECT.into());
        let instance =
            first(&self.instance, &file.instance_id).unwrap_or_else(|| DEFAULT_INSTANCE.into());
        Ok(ClientConfig::new(
            &with_scheme(&server),
            &token,
            &project,
            &instance,
        ))
    }

    /// The named file (which must exist), else the default one if it exists.
    fn config_file(&self) -> Result<ConfigFile, CliError> {
        match &self.config {
            Some(path) => read_config(path),
            None => match default_config_path() {
                Some(path) if path.exists() => read_config(&path),
                _ => Ok(ConfigFile::default()),
            },
        }
    }
}

fn first(flag_or_env: &Option<String>, file: &Option<String>) -> Option<String> {
    [flag_or_env, file]
        .into_iter()
        .flatten()
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

/// `host:port` means `http://host:port`.
fn with_scheme(server: &str) -> String {
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

/// `$XDG_CONFIG_HOME/fdi/cli.toml`, else `$HOME/.config/fdi/cli.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    non_empty("XDG_CONFIG_HOME")
        .or_else(|| non_empty("HOME").map(|h| h.join(".config")))
        .map(|dir| dir.join("fdi").join("cli.toml"))
}

pub fn read_config(path: &Path) -> Result<ConfigFile, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("config file {}: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| CliError::Usage(format!("config file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_blank_values_do_not_count() {
        assert_eq!(
            first(&Some("a".into()), &Some("b".into())).as_deref(),
            Some("a")
        );
        assert_eq!(
            first(&Some(" ".into()), &Some("b".into())).as_deref(),
            Some("b")
        );
        assert_eq!(first(&None, &None), None);
        assert_eq!(with_scheme("h:1"), "http://h:1");
        assert_eq!(with_scheme("https://h"), "https://h");
    }

    #[test]
    fn config_file_keys() {
        let f: ConfigFile =
            toml::from_str("server = \"h:1\"\ntoken = \"t\"\nproject_id = \"p\"").unwrap();
        assert_eq!(
            (
                f.server.as_deref(),
                f.token.as_deref(),
                f.project_id.as_deref(),
                f.instance_id
            ),
            (Some("h:1"), Some("t"), Some("p"), None)
        );
        assert!(
            toml::from_str::<ConfigFile>("tokn = \"t\"").is_err(),
            "a misspelt key is refused"
        );
    }
}
