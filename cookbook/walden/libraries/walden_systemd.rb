# frozen_string_literal: true

module Walden
  # The drop-in for walden.service, needed only when the host differs from
  # what the package's unit assumes (user, group, envdir, writable paths).
  module Systemd
    DROPIN_DIR = '/etc/systemd/system/walden.service.d'
    DROPIN = File.join(DROPIN_DIR, 'chef.conf')
    # ReadWritePaths the packaged unit already lists (packaging/walden.service).
    # The package's unit stays strict; this drop-in widens it per host.
    UNIT_WRITABLE = %w[/var/lib/postgresql /var/log/walden /run/walden].freeze

    module_function

    # Template variables, or nil when the packaged unit is right as it is.
    def dropin(config, walden_bin:, exec_start: nil)
      vars = {
        'user' => (config.user unless config.user == Config::DEFAULT_USER),
        'group' => (config.group unless config.group == Config::DEFAULT_GROUP),
        'exec_start' => exec_start || default_exec_start(config, walden_bin),
        'read_write_paths' => read_write_paths(config.env)
      }
      return nil if vars.values.all? { |v| v.nil? || v.empty? }

      vars
    end

    # --envdir is a global option of walden, given before the subcommand.
    def default_exec_start(config, walden_bin)
      return nil if config.envdir == Config::DEFAULT_ENVDIR

      plain!(config.envdir)
      "#{walden_bin} --envdir #{config.envdir} agent"
    end

    # Settings naming a directory the agent writes in, and settings naming a
    # file it creates (its directory must then be writable).
    DIR_SETTINGS = %w[PGDATA WALDEN_DRILL_DIR WALDEN_LOCK_DIR GNUPGHOME].freeze
    FILE_SETTINGS = %w[WALDEN_LOG_FILE WALDEN_SOCKET].freeze

    # ProtectSystem=strict leaves only listed paths writable, so every path
    # a setting makes the agent write must be listed: the data directory,
    # a file store's root, the drill, lock and GnuPG directories, and the
    # directories of the log file and socket. The "-" prefix keeps the
    # unit starting if one does not exist yet.
    def read_write_paths(env)
      dirs = writable_dirs(env).reject { |d| UNIT_WRITABLE.any? { |w| d == w || d.start_with?("#{w}/") } }
      dirs.map { |d| "-#{d}" }
    end

    # Every directory the agent writes in, as the settings give them.
    def writable_dirs(env)
      named(env).map do |name, dir|
        dir = dir.to_s.sub(%r{(?<=.)/+\z}, '')
        raise ConfigError, "#{name}: #{dir.inspect} must be an absolute path" unless dir.start_with?('/')

        plain!(dir)
        dir
      end.uniq
    end

    # [setting, directory] for each setting that is set.
    def named(env)
      pairs = DIR_SETTINGS.map { |n| [n, env[n]] } + FILE_SETTINGS.map { |n| [n, parent(env[n])] }
      pairs << [Store::PREFIX, Store.file_root(env)]
      pairs.reject { |_n, d| d.nil? || d.to_s.empty? }
    end

    def parent(path)
      path && File.dirname(path)
    end

    # systemd splits these settings on blanks.
    def plain!(path)
      raise ConfigError, "#{path.inspect}: paths with blanks cannot go into walden.service" if path.match?(/\s/)
    end
  end
end
