# frozen_string_literal: true

module Walden
  # The local directory of a file:// store. walden creates only the
  # subdirectories below it (basebackups_005/, wal_005/), so the root must
  # exist, owned by the service user.
  module Store
    PREFIX = 'WALE_FILE_PREFIX'
    MODE = '0750'

    module_function

    # walden takes WALE_FILE_PREFIX over the other prefixes, as WAL-E did;
    # its host part is ignored (file://localhost/srv/x and file:///srv/x
    # are the same directory).
    def file_root(env)
      value = env[PREFIX]
      return nil if value.nil? || value.to_s.empty?

      m = %r{\Afile://[^/]*(/.*)\z}i.match(value.to_s)
      path = m && m[1].squeeze('/').sub(%r{/+\z}, '')
      raise ConfigError, "#{PREFIX} #{value.inspect} must look like file://localhost/absolute/path" if
        path.nil? || path.empty?

      path
    end

    # Properties of the directory resource for the store root, or nil when
    # the store is not a file store.
    def directory(config)
      root = file_root(config.env)
      root && owned(config, root)
    end

    # Directories only the agent uses, made by the cookbook: in the sandbox
    # their parents are read-only, and ReadWritePaths skips a missing path.
    AGENT_DIRS = %w[WALDEN_DRILL_DIR WALDEN_LOCK_DIR].freeze

    # The store root and the agent's own directories, as directory
    # resource properties.
    def directories(config)
      agent = AGENT_DIRS.filter_map { |n| config.env[n] }.map { |d| owned(config, d.sub(%r{(?<=.)/+\z}, '')) }
      [directory(config), *agent].compact.uniq { |d| d['path'] }
    end

    def owned(config, path)
      { 'path' => path, 'owner' => config.user, 'group' => config.group, 'mode' => MODE }
    end
  end
end
