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
      root && { 'path' => root, 'owner' => config.user, 'group' => config.group, 'mode' => MODE }
    end
  end
end
