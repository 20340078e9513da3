# frozen_string_literal: true

module Walden
  # The drop-in for walden.service, needed only when the host differs from
  # what the package's unit assumes (user, group, envdir, writable paths).
  module Systemd
    DROPIN_DIR = '/etc/systemd/system/walden.service.d'
    DROPIN = File.join(DROPIN_DIR, 'chef.conf')
    # ReadWritePaths the packaged unit already lists (packaging/walden.service).
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

    # ProtectSystem=strict leaves only listed paths writable: a data
    # directory, log file or socket elsewhere than the unit expects must be
    # listed. The "-" prefix keeps the unit starting if one does not exist yet.
    def read_write_paths(env)
      dirs = [env['PGDATA'], parent(env['WALDEN_LOG_FILE']), parent(env['WALDEN_SOCKET'])].compact.uniq
      dirs = dirs.reject { |d| UNIT_WRITABLE.any? { |w| d == w || d.start_with?("#{w}/") } }
      dirs.each { |d| plain!(d) }
      dirs.map { |d| "-#{d}" }
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
