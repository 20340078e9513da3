# frozen_string_literal: true

module Walden
  # The two renames and the link removal of the cutover. Renames keep the
  # virtualenv byte for byte (a virtualenv does not run from another path,
  # which is why it moves back rather than being copied).
  module Files
    module_function

    def move!(from, to)
      raise ConfigError, "#{from} does not exist" unless File.exist?(from) || File.symlink?(from)
      raise ConfigError, "#{to} already exists; not overwriting it with #{from}" if File.exist?(to) || File.symlink?(to)

      File.rename(from, to)
    end

    # Removes the directory migration created for walden's wal-e link, and
    # refuses when it holds anything else: that is not ours to delete.
    def remove_link_dir!(install, target)
      extra = leftovers(install, target)
      unless extra.empty?
        raise ConfigError, "#{install} holds more than walden's wal-e link (#{extra.join(', ')}); move it away by hand"
      end

      link = File.join(install, 'bin', 'wal-e')
      File.unlink(link) if File.symlink?(link)
      Dir.rmdir(File.join(install, 'bin')) if File.directory?(File.join(install, 'bin'))
      Dir.rmdir(install)
    end

    def leftovers(install, target)
      found = Dir.glob('**/*', File::FNM_DOTMATCH, base: install).reject { |p| File.basename(p) == '.' }
      extra = found - %w[bin bin/wal-e]
      link = File.join(install, 'bin', 'wal-e')
      ours = File.symlink?(link) && File.readlink(link) == target
      extra << 'bin/wal-e (not the walden link)' if found.include?('bin/wal-e') && !ours
      extra
    end
  end
end
